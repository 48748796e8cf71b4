"""The dataset card (``README.md``) of a label set, rendered from ``hub_cards/label_set_card.md``.

Its YAML (``configs`` -> ``data/*.parquet``, ``dataset_info`` features) makes ``datasets.load_dataset(repo_id)`` and
the Hub's dataset viewer read exactly the label rows, with their dtypes. Every field of
:class:`~fkd_hf.labels.format.LabelSetMetadata` is a template variable, so a new metadata field needs only a
template edit. The card never holds a token: it is built from metadata fields only.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from ..labels.format import DATA_DIR, LabelSetMetadata
from ..repo_ids import hub_repo_id
from .templates import FKD_CITATION, FKD_PAPER_URL, LABEL_SET_TEMPLATE, hub_link, templates_dir

__all__ = ["label_set_card", "write_label_set_card"]

_SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                    (10**12, "1B<n<10B")]  # fmt: skip


def _size_category(rows: int) -> str:
    return next((name for bound, name in _SIZE_CATEGORIES if rows < bound), "n>1T")


def _card_data(metadata: LabelSetMetadata, license: str) -> DatasetCardData:
    source = hub_repo_id(metadata.dataset)
    card_data = DatasetCardData(
        license=license,
        task_categories=["image-classification"],
        tags=["fkd", "knowledge-distillation", "soft-labels"],
        size_categories=[_size_category(metadata.num_rows)],
        source_datasets=[source] if source else None,
        pretty_name=f"FKD soft labels: {metadata.dataset} ({metadata.dataset_split}) from {metadata.teacher}",
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": f"{DATA_DIR}/*.parquet"}]}],
    )
    info = datasets.DatasetInfo(
        features=metadata.features(),
        splits=datasets.SplitDict({"train": datasets.SplitInfo(name="train", num_examples=metadata.num_rows)}),
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    return card_data


def label_set_card(
    metadata: LabelSetMetadata, repo_id: str | None = None, license: str = "other", revision: str | None = None
) -> DatasetCard:
    """The dataset card of a label set.

    Its text gives the teacher and revision, the source dataset and revision, R, kind, k, temperature, crop ranges,
    class names, bytes per crop, a usage snippet that loads ``repo_id`` (at ``revision``, when it is pushed to a
    branch) and joins it with the images, and the FKD citation.
    """
    dataset_repo = hub_repo_id(metadata.dataset)
    values = metadata.to_dict()
    values.update(
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
    return DatasetCard.from_template(_card_data(metadata, license), template_path=template, **values)


def write_label_set_card(
    directory: str | os.PathLike, metadata: LabelSetMetadata, repo_id: str | None = None, license: str = "other"
) -> Path:
    """Writes the label set's ``README.md`` into ``directory``; returns its path."""
    path = Path(directory) / "README.md"
    label_set_card(metadata, repo_id, license).save(path)
    return path
