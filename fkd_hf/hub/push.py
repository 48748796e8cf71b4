"""Push label sets and students to the Hugging Face Hub.

    >>> push_label_set("outputs/labels", "user/imagenette-fkd-labels")  # doctest: +SKIP
    'https://huggingface.co/datasets/user/imagenette-fkd-labels'
    >>> push_student("outputs/student", "user/resnet18-fkd", label_set="user/imagenette-fkd-labels")  # doctest: +SKIP
    'https://huggingface.co/user/resnet18-fkd'

A label set is pushed as it lies on disk: its parquet shards (byte for byte, same names), ``fkd_labels.json`` and a
dataset card rendered for the repo, in one commit; shards of an earlier push that the folder no longer has are
deleted in the same commit, so a re-push updates the repo in place. ``load_label_set(repo_id)`` and
``datasets.load_dataset(repo_id)`` read it back (the card's YAML points ``load_dataset`` at ``data/*.parquet``).

A student folder (weights + ``config.json``, optionally ``fkd_student.json``) is pushed with a model card rendered
from ``fkd_student.json``; training state (checkpoints, optimizer, ``training_args.bin``) stays local.

Tokens come from ``token=``, the ``HF_TOKEN`` environment variable or ``hf auth login``. They are never printed,
logged or written into a card; :func:`redact_tokens` removes them from any text shown to the user, and a push whose
files hold one is refused before anything is created on the Hub.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
from pathlib import Path

import pyarrow.parquet as pq
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.hf_api import RepoUrl

from ..labels.format import DATA_DIR, METADATA_FILE, LabelSetMetadata, read_metadata
from .label_card import label_set_card
from .model_card import student_card
from .student_info import STUDENT_FILE, StudentInfo

logger = logging.getLogger(__name__)

__all__ = [
    "push_label_set",
    "push_student",
    "redact_tokens",
    "describe_error",
    "check_label_set_folder",
    "check_student_folder",
]

# Remote files a push owns: ones the folder no longer has are deleted, so a re-push leaves no stale copy behind.
LABEL_SET_OWNED = (f"{DATA_DIR}/*",)
STUDENT_OWNED = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json", "*.pth", "*.pt")
# Local files of a student folder that never leave it: training state and anything hidden or temporary.
STUDENT_IGNORED = (
    "checkpoint-*", "runs/*", "_*", ".*", "*/.*", "*.tmp", "training_args.bin", "optimizer.pt", "optimizer.bin",
    "scheduler.pt", "scaler.pt", "rng_state*.pth", "trainer_state.json",
)  # fmt: skip
STUDENT_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                   "pytorch_model.bin.index.json")  # fmt: skip
_TEXT_SUFFIXES = (".json", ".yaml", ".yml", ".md", ".txt", ".cfg", ".toml", ".ini")


# --- tokens ----------------------------------------------------------------------------------------------------------


def _known_tokens(token: str | None = None) -> list[str]:
    from huggingface_hub import get_token

    candidates = [token, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")]
    try:
        candidates.append(get_token())
    except Exception:  # a broken token file must not hide the real error
        pass
    return [t for t in dict.fromkeys(candidates) if isinstance(t, str) and len(t) >= 4]


def redact_tokens(text: str, token: str | None = None) -> str:
    """``text`` with every Hugging Face token this process knows (``token``, environment, login) replaced."""
    for known in _known_tokens(token):
        text = text.replace(known, "***")
    return text


def _refuse_token_in_files(files: dict[str, Path | bytes], token: str | None) -> None:
    """Raises if a text file about to be uploaded contains a token (e.g. a config dump that kept ``hub_token``)."""
    tokens = _known_tokens(token)
    for path_in_repo, source in files.items():
        if not path_in_repo.endswith(_TEXT_SUFFIXES):
            continue
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        if any(t.encode() in data for t in tokens):
            raise ValueError(
                f"{path_in_repo} contains a Hugging Face token: remove it from the file before pushing "
                "(tokens belong in HF_TOKEN or `hf auth login`, never in files)."
            )


# --- commits ---------------------------------------------------------------------------------------------------------


def _create_repo(api: HfApi, repo_id: str, repo_type: str, private: bool | None, revision: str | None) -> RepoUrl:
    """Creates the repo (and branch) if needed; returns the repo URL, whose ``repo_id`` has the namespace."""
    url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    if private and not api.repo_info(url.repo_id, repo_type=repo_type).private:
        raise ValueError(
            f"{url.repo_id} already exists and is public, and `private` only applies to new repos: nothing was "
            "pushed. Make it private first (on the Hub, or HfApi().update_repo_settings(repo_id, private=True, "
            f"repo_type={repo_type!r})), or push to a new repo."
        )
    if revision not in (None, "main"):
        api.create_branch(url.repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
    return url


def _commit(
    api: HfApi,
    repo_id: str,
    repo_type: str,
    files: dict[str, Path | bytes],
    owned: tuple[str, ...],
    revision: str | None,
    message: str,
):
    """One commit: adds ``files`` (unchanged ones are skipped by the client) and deletes remote files that match
    ``owned`` but are not in ``files``."""
    remote = api.list_repo_files(repo_id, repo_type=repo_type, revision=revision)
    stale = [p for p in remote if p not in files and any(fnmatch.fnmatch(p, pattern) for pattern in owned)]
    operations = [CommitOperationDelete(path_in_repo=p) for p in stale]
    operations += [
        CommitOperationAdd(path_in_repo=p, path_or_fileobj=s if isinstance(s, bytes) else str(s))
        for p, s in sorted(files.items())
    ]
    logger.info("Pushing %d files (%d stale ones deleted) to %s", len(files), len(stale), repo_id)
    return api.create_commit(repo_id, operations, commit_message=message, repo_type=repo_type, revision=revision)


# --- label sets ------------------------------------------------------------------------------------------------------


def check_label_set_folder(directory: str | os.PathLike) -> tuple[LabelSetMetadata, list[Path]]:
    """The metadata and shards of a finished label-set folder; a clear error for an unfinished or damaged one."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a folder: give the output_dir of `fkd-hf generate`.")
    metadata = read_metadata(directory)  # explains a missing fkd_labels.json (unfinished generation)
    shards = sorted((directory / DATA_DIR).glob("*.parquet"))
    rows = sum(pq.read_metadata(p).num_rows for p in shards)
    if len(shards) != metadata.num_shards or rows != metadata.num_rows:
        raise ValueError(
            f"{directory} has {len(shards)} shards with {rows} rows, but its {METADATA_FILE} says "
            f"{metadata.num_shards} shards with {metadata.num_rows} rows: the label set was modified or is "
            "incomplete; rerun `fkd-hf generate` with the same options to repair it."
        )
    return metadata, shards


def push_label_set(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    license: str = "other",
) -> str:
    """Uploads a finished label set to the Hub dataset repo ``repo_id``; returns the repo URL.

    Args:
        directory: a folder written by ``fkd-hf generate`` (it must hold ``fkd_labels.json``).
        repo_id: ``user/name`` or ``org/name`` (a bare ``name`` goes to the token's user).
        private: make the repo private when it is created (None: the Hub's default). An existing repo keeps its
            visibility.
        revision: branch to push to (created from ``main`` if missing); default ``main``.
        token: a token with write access; default ``HF_TOKEN`` or the ``hf auth login`` token.
        commit_message: default ``"Upload FKD label set (N rows, R crops, kind)"``.
        license: the dataset card's licence (the labels derive from the teacher and the images).
    """
    metadata, shards = check_label_set_folder(directory)

    def card(repo: str) -> bytes:
        return str(label_set_card(metadata, repo, license=license, revision=revision)).encode()

    files: dict[str, Path | bytes] = {f"{DATA_DIR}/{p.name}": p for p in shards}
    files[METADATA_FILE] = Path(directory) / METADATA_FILE
    files["README.md"] = card(repo_id)
    _refuse_token_in_files(files, token)  # before anything is created on the Hub
    api = HfApi(token=token)
    url = _create_repo(api, repo_id, "dataset", private, revision)
    if url.repo_id != repo_id:  # a bare name: the card names the repo with its namespace
        files["README.md"] = card(url.repo_id)
    message = commit_message or (
        f"Upload FKD label set ({metadata.num_rows} rows, R={metadata.stored_crops}, {metadata.kind} k={metadata.k})"
    )
    _commit(api, url.repo_id, "dataset", files, LABEL_SET_OWNED, revision, message)
    return str(url)


# --- students --------------------------------------------------------------------------------------------------------


def check_student_folder(directory: str | os.PathLike) -> dict:
    """The ``config.json`` of a saved student folder; raises a clear error for a folder that cannot load."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file() or not any((directory / name).is_file() for name in STUDENT_WEIGHTS):
        raise FileNotFoundError(
            f"{directory} is not a saved student: it needs config.json and model.safetensors (the output_dir of "
            "`fkd-hf train`, or a folder written by fkd_hf.models.save_student)."
        )
    config = json.loads(config_path.read_text())
    if config.get("model_type") == "timm_wrapper" and "pretrained_cfg" not in config:
        raise ValueError(
            f"{directory} was saved by the Trainer in transformers' TimmWrapper format, which timm cannot load "
            "(a checkpoint-* folder, or Trainer.save_model). Push the student folder written at the end of "
            "`fkd-hf train`, or convert this one first: fkd_hf.models.save_student("
            "AutoModelForImageClassification.from_pretrained(DIR), NEW_DIR)."
        )
    if "architecture" in config and "num_classes" in (config.get("model_args") or {}):
        raise ValueError(
            f"{config_path} repeats num_classes in model_args: transformers would fail to load it (\"got multiple "
            "values for keyword argument 'num_classes'\"). Save the student with fkd_hf.models.save_student, or "
            "remove num_classes from model_args."
        )
    return config


def _student_files(directory: Path) -> dict[str, Path]:
    files = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_file() and not any(fnmatch.fnmatch(relative, pattern) for pattern in STUDENT_IGNORED):
            files[relative] = path
    return files


def push_student(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    label_set: str | None = None,
    license: str | None = None,
    model_name: str | None = None,
) -> str:
    """Uploads a saved student to the Hub model repo ``repo_id`` with its model card; returns the repo URL.

    The card (``README.md``) is rendered anew from the folder's ``fkd_student.json`` (missing fields come from
    ``config.json``) with ``model_id = repo_id``, so change the card through ``fkd_student.json``; ``label_set``
    (e.g. the Hub id the label set was pushed to), ``license`` and ``model_name`` override its fields. The local
    folder is not modified. Weights of an earlier push that the folder no longer has are deleted; checkpoints,
    optimizer state and ``training_args.bin`` are not uploaded, and a text file holding a token stops the push before
    anything is created on the Hub.
    ``private``, ``revision``, ``token`` and ``commit_message`` work as in :func:`push_label_set`.
    """
    directory = Path(directory)
    check_student_folder(directory)
    info = StudentInfo.from_folder(directory)
    for key, value in {"label_set": label_set, "license": license, "model_name": model_name}.items():
        if value is not None:
            setattr(info, key, value)
    if label_set is not None:
        info.label_set_revision = None
    files: dict[str, Path | bytes] = _student_files(directory)

    def add_card(repo: str) -> None:
        info.model_id = repo
        files[STUDENT_FILE] = info.to_json().encode()
        files["README.md"] = str(student_card(info)).encode()

    add_card(repo_id)
    _refuse_token_in_files(files, token)  # before anything is created on the Hub
    api = HfApi(token=token)
    url = _create_repo(api, repo_id, "model", private, revision)
    if url.repo_id != repo_id:  # a bare name: the card names the repo with its namespace
        add_card(url.repo_id)
    message = commit_message or f"Upload FKD student ({info.architecture or 'model'})"
    _commit(api, url.repo_id, "model", files, STUDENT_OWNED, revision, message)
    return str(url)


# --- command line ----------------------------------------------------------------------------------------------------


def describe_error(err: BaseException, token: str | None = None) -> str:
    """A one-paragraph, token-free explanation of a failed push, with the likely fix for authentication errors."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    message = f"{type(err).__name__}: {err}"
    status = getattr(getattr(err, "response", None), "status_code", None) if isinstance(err, HfHubHTTPError) else None
    if isinstance(err, LocalTokenNotFoundError) or status == 401:
        message += "\nAuthentication failed: set HF_TOKEN to a token with write access, or run `hf auth login`."
    elif status == 403:
        message += "\nThe token cannot write to this repo: use a token with write access to its namespace."
    return redact_tokens(message, token)
