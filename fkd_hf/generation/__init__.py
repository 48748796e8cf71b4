"""``fkd-hf generate``: run the teacher once and store R crops and their soft labels per image."""

from .._lazy import lazy_namespace

__all__, __getattr__, __dir__ = lazy_namespace(
    __name__,
    globals(),
    {
        "config": ["GenerateConfig"],
        "generator": ["GenerateSummary", "generate"],
        "import_config": ["ImportFKDConfig"],
        "official_import": ["import_fkd"],
    },
)
