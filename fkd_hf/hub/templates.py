"""What both Hub cards share: the Jinja templates of ``hub_cards/``, the FKD citation, links to Hub repos and the
licence of what FKD derives from a teacher and its images."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "FKD_CITATION",
    "FKD_PAPER_URL",
    "LABEL_SET_TEMPLATE",
    "STUDENT_TEMPLATE",
    "LICENSE_FILE",
    "DERIVED_LICENSE_NAME",
    "templates_dir",
    "hub_link",
    "license_fields",
    "derived_license_text",
]

FKD_CITATION = """@inproceedings{shen2022fast,
  title     = {A Fast Knowledge Distillation Framework for Visual Recognition},
  author    = {Shen, Zhiqiang and Xing, Eric},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2022}
}"""
FKD_PAPER_URL = "https://arxiv.org/abs/2112.01528"
LABEL_SET_TEMPLATE = "label_set_card.md"
STUDENT_TEMPLATE = "student_card.md"
# A card whose licence is `other` names it and links to this file, which a push uploads beside the card.
LICENSE_FILE = "LICENSE.md"
DERIVED_LICENSE_NAME = "teacher-and-dataset-terms"


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


def license_fields(license: str | None) -> dict[str, str]:
    """``license_name`` and ``license_link`` for a card whose licence is ``other`` (the Hub asks for both); {}
    otherwise."""
    return {"license_name": DERIVED_LICENSE_NAME, "license_link": LICENSE_FILE} if license in (None, "other") else {}


def derived_license_text(subject: str, teacher: str | None, dataset: str | None) -> str:
    """The licence paragraph of soft labels or weights derived from ``teacher``'s outputs on ``dataset``'s images
    (names as the card shows them); ``subject`` says what, e.g. "These soft labels"."""
    from ..repo_ids import hub_repo_id

    def named(spec: str | None, repo_type: str, fallback: str) -> str:
        link = hub_link(hub_repo_id(spec), repo_type)
        return f"[`{spec}`]({link})" if link else f"`{spec}`" if spec else fallback

    return (
        f"{subject} were derived with FKD from the outputs of the teacher {named(teacher, 'model', 'model')} on the "
        f"images of {named(dataset, 'dataset', 'the source dataset')}. No single licence covers them: the licence of "
        "the teacher's weights and the terms of use of the images both apply. Check both before you use or share "
        "them."
    )
