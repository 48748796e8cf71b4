"""The dataset card (``README.md``) of a label set, rendered from ``hub_cards/label_set_card.md``.

Its YAML (``configs`` -> ``data/*.parquet``, ``dataset_info`` features) makes ``datasets.load_dataset(repo_id)`` and
the Hub's dataset viewer read exactly the label rows, with their dtypes. Every field of
:class:`~fkd_hf.labels.format.LabelSetMetadata` is a template variable, so a new metadata field needs only a
template edit. The card never holds a token (it is built from metadata fields only) nor a local absolute path (local
specs are shown as :func:`~fkd_hf.repo_ids.portable_spec` gives them; ``fkd_labels.json`` keeps the recorded paths).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import datasets
import pyarrow.parquet as pq
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from ..labels.format import DATA_DIR, LabelSetMetadata
from ..repo_ids import hub_repo_id, portable_spec
from .templates import (
    FKD_CITATION,
    FKD_PAPER_URL,
    LABEL_SET_TEMPLATE,
    derived_license_text,
    hub_link,
    license_fields,
    templates_dir,
)

__all__ = ["label_set_card", "label_set_subject", "write_label_set_card"]

_SIZE_CATEGORIES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10**12, "1B<n<10B"),
]


def _size_category(rows: int) -> str:
    return next((name for bound, name in _SIZE_CATEGORIES if rows < bound), "n>1T")


def label_set_subject(metadata: LabelSetMetadata) -> str:
    """What a set holds, as its licence paragraph names it: "These targets" (of an encoder teacher, for a label-free
    set) or "These soft labels"."""
    return "These targets" if metadata.target.label_free else "These soft labels"


def _title(metadata: LabelSetMetadata) -> str:
    held = "targets" if metadata.target.label_free else "soft labels"
    dataset, teacher = portable_spec(metadata.dataset), portable_spec(metadata.teacher)
    return f"FKD {held}: {dataset} ({metadata.dataset_split}) from {teacher}"


def _card_data(metadata: LabelSetMetadata, license: str, shards: Sequence[Path] | None) -> DatasetCardData:
    source = hub_repo_id(metadata.dataset)
    label_free = metadata.target.label_free
    card_data = DatasetCardData(
        license=license,
        **license_fields(license),
        task_categories=["image-feature-extraction" if label_free else "image-classification"],
        tags=["fkd", "knowledge-distillation", *(["self-supervised", "embeddings"] if label_free else ["soft-labels"])],
        size_categories=[_size_category(metadata.num_rows)],
        source_datasets=[source] if source else None,
        pretty_name=_title(metadata),
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": f"{DATA_DIR}/*.parquet"}]}],
    )
    num_bytes, download_size = _sizes(shards) if shards else (None, None)
    split = datasets.SplitInfo(name="train", num_examples=metadata.num_rows, num_bytes=num_bytes or 0)
    info = datasets.DatasetInfo(
        features=metadata.features(),
        splits=datasets.SplitDict({"train": split}),
        download_size=download_size,
        dataset_size=num_bytes,
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    if num_bytes is None:  # unknown, not zero
        for entry in card_data.dataset_info["splits"]:
            entry.pop("num_bytes", None)
    return card_data


def _sizes(shards: Sequence[Path]) -> tuple[int, int]:
    """``(num_bytes, download_size)`` as ``datasets`` defines them: the Arrow size of the rows in memory (each
    shard read as one table, as ``load_dataset`` reads it) and the size of the parquet files."""
    return sum(pq.read_table(p).nbytes for p in shards), sum(Path(p).stat().st_size for p in shards)


def label_set_card(
    metadata: LabelSetMetadata,
    repo_id: str | None = None,
    license: str = "other",
    revision: str | None = None,
    shards: Sequence[Path] | None = None,
) -> DatasetCard:
    """The dataset card of a label set.

    Its text gives the teacher and revision, the source dataset and revision, R, what each crop stores and in which
    columns (as the set's target type describes them), kind, k, temperature, crop ranges, class names, bytes per
    crop, a usage snippet that loads ``repo_id`` (at ``revision``, when it is pushed to a branch) and joins it with
    the images, the licence and the FKD citation. ``shards`` (the parquet files) give the
    YAML's sizes; without them the sizes are left out. A label-free set (an encoder teacher's targets, for
    self-supervised distillation) is an ``image-feature-extraction`` dataset whose card gives the embedding width D
    and the target type instead of classes.
    """
    dataset_repo = hub_repo_id(metadata.dataset)
    dataset, teacher = portable_spec(metadata.dataset), portable_spec(metadata.teacher)
    values = metadata.to_dict()
    target = metadata.target
    values.update(
        title=_title(metadata),
        label_free=target.label_free,
        target_description=target.describe(metadata),
        target_columns="; ".join(f"`{column}`: {text}" for column, text in target.columns.items()),
        dataset=dataset,
        teacher=teacher,
        dataset_absolute=None,
        provenance=_portable_provenance(metadata.provenance),
        license=license,
        license_text=derived_license_text(label_set_subject(metadata), teacher, dataset)
        if license == "other"
        else None,
        skipped_count=len(metadata.skipped_rows),
        bytes_per_crop=f"{metadata.bytes_per_crop:.1f}" if metadata.bytes_per_crop is not None else "n/a",
        repo_id=repo_id or "<user>/<label-set>",
        repo_revision=revision if revision not in (None, "main") else None,
        dataset_repo_id=dataset_repo,
        dataset_link=hub_link(dataset_repo, "dataset"),
        teacher_link=hub_link(hub_repo_id(metadata.teacher)),
        citation=FKD_CITATION,
        paper_url=FKD_PAPER_URL,
    )
    template = str(templates_dir() / LABEL_SET_TEMPLATE)
    return DatasetCard.from_template(_card_data(metadata, license, shards), template_path=template, **values)


def _portable_provenance(provenance: dict | None) -> dict | None:
    """The provenance with the label sets and teachers of a merge as a card shows them."""
    if not provenance or "label_sets" not in provenance:
        return provenance
    parts = [
        {**part, "source": portable_spec(part.get("source")), "teacher": portable_spec(part.get("teacher"))}
        for part in provenance["label_sets"]
    ]
    return {**provenance, "label_sets": parts}


def write_label_set_card(
    directory: str | os.PathLike, metadata: LabelSetMetadata, repo_id: str | None = None, license: str = "other"
) -> Path:
    """Writes the label set's ``README.md`` into ``directory`` (its sizes from the shards in ``data/``); returns
    its path."""
    path = Path(directory) / "README.md"
    shards = sorted((Path(directory) / DATA_DIR).glob("*.parquet"))
    label_set_card(metadata, repo_id, license, shards=shards or None).save(path)
    return path
