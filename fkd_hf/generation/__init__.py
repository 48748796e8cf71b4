"""Producing label sets: ``fkd-hf generate`` (run the teacher once and store R crops and their soft labels per
image), ``fkd-hf import-fkd`` (convert official FKD label files) and the options of ``fkd-hf merge-labels``."""

from .._lazy import lazy_namespace

__all__, __getattr__, __dir__ = lazy_namespace(
    __name__,
    globals(),
    {
        "config": ["GenerateConfig", "ResolvedGenerate"],
        "generator": ["generate"],
        "shards": ["GenerateSummary", "ShardedRun", "run_sharded"],
        "import_config": ["ImportFKDConfig"],
        "official_import": ["import_fkd"],
        "merge_config": ["MergeLabelsConfig"],
    },
)
