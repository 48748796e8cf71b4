"""Hub cards for label sets and students, rendered from the Jinja templates in ``hub_cards/``."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData

from .label_set import DATA_DIR, LabelSetMetadata

FKD_CITATION = """@inproceedings{shen2022fast,
  title     = {A Fast Knowledge Distillation Framework for Visual Recognition},
  author    = {Shen, Zhiqiang and Xing, Eric},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2022}
}"""

__all__ = ["FKD_CITATION", "templates_dir", "label_set_card", "write_label_set_card"]


def templates_dir() -> Path:
    """The ``hub_cards`` folder: shipped in the wheel as ``fkd_hf.hub_cards``, or beside the package in a checkout."""
    checkout = Path(__file__).resolve().parent.parent / "hub_cards"
    if checkout.is_dir():
        return checkout
    return Path(str(importlib.resources.files("fkd_hf.hub_cards")))


def label_set_card(metadata: LabelSetMetadata, repo_id: str | None = None) -> DatasetCard:
    """The dataset card of a label set; its YAML makes ``load_dataset`` read ``data/*.parquet`` only."""
    card_data = DatasetCardData(
        license="other",
        task_categories=["image-classification"],
        tags=["fkd", "knowledge-distillation", "soft-labels"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": f"{DATA_DIR}/*.parquet"}]}],
    )
    values = metadata.to_dict()
    values.update(
        skipped_count=len(metadata.skipped_rows),
        bytes_per_crop=f"{metadata.bytes_per_crop:.1f}" if metadata.bytes_per_crop is not None else "n/a",
        repo_id=repo_id or "<user>/<label-set>",
        citation=FKD_CITATION,
    )
    return DatasetCard.from_template(card_data, template_path=str(templates_dir() / "label_set_card.md"), **values)


def write_label_set_card(directory: str | Path, metadata: LabelSetMetadata, repo_id: str | None = None) -> Path:
    path = Path(directory) / "README.md"
    label_set_card(metadata, repo_id).save(path)
    return path
