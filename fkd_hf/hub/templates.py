"""What both Hub cards share: the Jinja templates of ``hub_cards/``, the FKD citation and links to Hub repos."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FKD_CITATION", "FKD_PAPER_URL", "LABEL_SET_TEMPLATE", "STUDENT_TEMPLATE", "templates_dir", "hub_link"]

FKD_CITATION = """@inproceedings{shen2022fast,
  title     = {A Fast Knowledge Distillation Framework for Visual Recognition},
  author    = {Shen, Zhiqiang and Xing, Eric},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2022}
}"""
FKD_PAPER_URL = "https://arxiv.org/abs/2112.01528"
LABEL_SET_TEMPLATE = "label_set_card.md"
STUDENT_TEMPLATE = "student_card.md"


def templates_dir() -> Path:
    """The ``hub_cards`` folder of Jinja templates: ``fkd_hf/hub_cards`` in an installed wheel (the pyproject maps the
    top-level folder there), or ``hub_cards/`` beside the package in a checkout."""
    package = Path(__file__).resolve().parents[1]  # fkd_hf/
    for candidate in (package / "hub_cards", package.parent / "hub_cards"):
        if (candidate / LABEL_SET_TEMPLATE).is_file():
            return candidate
    raise FileNotFoundError(
        f"The card templates (hub_cards/{LABEL_SET_TEMPLATE}) are neither in {package} nor beside it: "
        "reinstall fkd-hf (pip install --force-reinstall fkd-hf)."
    )


def hub_link(repo_id: str | None, repo_type: str = "model") -> str | None:
    """The web address of a Hub repo on the configured endpoint; None for None."""
    if repo_id is None:
        return None
    from huggingface_hub import constants

    prefix = "datasets/" if repo_type == "dataset" else ""
    return f"{constants.ENDPOINT.rstrip('/')}/{prefix}{repo_id}"
