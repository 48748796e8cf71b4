"""Push label sets and students to the Hugging Face Hub.

    >>> push_label_set("outputs/labels", "user/imagenette-fkd-labels")  # doctest: +SKIP
    'https://huggingface.co/datasets/user/imagenette-fkd-labels'
    >>> push_student("outputs/student", "user/resnet18-fkd", label_set="user/imagenette-fkd-labels")  # doctest: +SKIP
    'https://huggingface.co/user/resnet18-fkd'

A label set is pushed as it lies on disk: its parquet shards (byte for byte, same names), ``fkd_labels.json`` and a
dataset card rendered for the repo, in one commit; shards of an earlier push that the folder no longer has are
deleted in the same commit, so a re-push updates the repo in place. ``load_label_set(repo_id)`` and
``datasets.load_dataset(repo_id)`` read it back (the card's YAML points ``load_dataset`` at ``data/*.parquet``).

A student folder (weights + ``config.json``, optionally ``fkd_student.json``; a label-free student's projection head,
``projection_head.safetensors`` and ``projection_head.json``, beside them) is pushed with a model card rendered
from ``fkd_student.json``; training state (checkpoints, optimizer, ``training_args.bin``) stays local. Its safetensors
weights are opened (header, and tensor sizes against the file size) before anything is created on the Hub.

A card whose licence is ``other`` links to a ``LICENSE.md`` that the push adds (unless the folder has one).

Tokens come from ``token=``, the ``HF_TOKEN`` environment variable or ``hf auth login``. They are never printed,
logged or written into a card: :mod:`fkd_hf.hub.tokens` removes them from errors, log records and any text shown to
the user, and a push is refused before anything is created on the Hub when any of its files (of any type) holds a
known token or anything shaped like a Hugging Face token.
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
from ..repo_ids import portable_spec
from .label_card import label_set_card, label_set_subject
from .model_card import portable_info, student_card
from .student_info import STUDENT_FILE, StudentInfo
from .templates import LICENSE_FILE, derived_license_text, license_fields
from .tokens import redact_tokens, refuse_tokens_in_files, tokens_scrubbed

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
# A student's weights, and the shape of a label-free student's projection head (fkd_hf.models.projection.HEAD_CONFIG).
STUDENT_OWNED = (
    "*.safetensors",
    "*.safetensors.index.json",
    "*.bin",
    "*.bin.index.json",
    "*.pth",
    "*.pt",
    "projection_head.json",
)
# Local files of a student folder that never leave it: training state and anything hidden or temporary.
STUDENT_IGNORED = (
    "checkpoint-*",
    "runs/*",
    "_*",
    ".*",
    "*/.*",
    "*.tmp",
    "training_args.bin",
    "optimizer.pt",
    "optimizer.bin",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "trainer_state.json",
)
STUDENT_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
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
    with tokens_scrubbed(token):

        def card(repo: str) -> bytes:
            return str(label_set_card(metadata, repo, license=license, revision=revision, shards=shards)).encode()

        files: dict[str, Path | bytes] = {f"{DATA_DIR}/{p.name}": p for p in shards}
        files[METADATA_FILE] = Path(directory) / METADATA_FILE
        files["README.md"] = card(repo_id)
        if license_fields(license):
            files[LICENSE_FILE] = _license_file(label_set_subject(metadata), metadata.teacher, metadata.dataset)
        refuse_tokens_in_files(files, token)  # before anything is created on the Hub
        api = HfApi(token=token)
        url = _create_repo(api, repo_id, "dataset", private, revision)
        if url.repo_id != repo_id:  # a bare name: the card names the repo with its namespace
            files["README.md"] = card(url.repo_id)
        message = commit_message or (
            f"Upload FKD label set ({metadata.num_rows} rows, R={metadata.stored_crops}, {metadata.kind} "
            f"k={metadata.k})"
        )
        _commit(api, url.repo_id, "dataset", files, LABEL_SET_OWNED, revision, message)
    return str(url)


def _license_file(subject: str, teacher: str | None, dataset: str | None) -> bytes:
    """The ``LICENSE.md`` a card of licence ``other`` links to."""
    text = derived_license_text(subject, portable_spec(teacher), portable_spec(dataset))
    return f"# Licence\n\n{text}\n".encode()


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
            f'{config_path} repeats num_classes in model_args: transformers would fail to load it ("got multiple '
            "values for keyword argument 'num_classes'\"). Save the student with fkd_hf.models.save_student, or "
            "remove num_classes from model_args."
        )
    _check_weights(directory, set(_student_files(directory)))
    return config


def _check_weights(directory: Path, names: set[str]) -> None:
    """Opens every safetensors file (its header, and each tensor's size against the file's) and checks that a
    sharded index names only shards the folder has."""
    from safetensors import safe_open

    for name in sorted(names):
        path = directory / name
        try:
            if name.endswith(".safetensors"):
                with safe_open(str(path), framework="np"):
                    pass
            elif name.endswith(".safetensors.index.json"):
                missing = sorted(set(json.loads(path.read_text())["weight_map"].values()) - names)
                if missing:
                    raise ValueError(f"it names shards the folder lacks: {', '.join(missing[:3])}")
        except Exception as err:
            raise ValueError(
                f"{path} cannot be read as weights ({' '.join(str(err).split())}): it is truncated or damaged. Save "
                "the student again (the output_dir of `fkd-hf train`, or fkd_hf.models.save_student); nothing was "
                "pushed."
            ) from None


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
    folder is not modified; the uploaded ``fkd_student.json`` and card show local paths by their last folder only.
    Weights of an earlier push that the folder no longer has are deleted; checkpoints, optimizer state and
    ``training_args.bin`` are not uploaded. Weights that cannot be read, or any file holding a token, stop the push
    before anything is created on the Hub.
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
    if license_fields(info.license) and LICENSE_FILE not in files:
        files[LICENSE_FILE] = _license_file("These weights", info.teacher, info.dataset)

    def add_card(repo: str) -> None:
        info.model_id = repo
        files[STUDENT_FILE] = portable_info(info).to_json().encode()
        files["README.md"] = str(student_card(info)).encode()

    with tokens_scrubbed(token):
        add_card(repo_id)
        refuse_tokens_in_files(files, token)  # before anything is created on the Hub
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
