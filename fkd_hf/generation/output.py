"""The output folder of ``fkd-hf generate``: when a rerun resumes it, and what ``--overwrite`` may delete.

A folder is a label set when it holds ``fkd_run.json`` (the options of the run writing it, saved first) or
``fkd_labels.json`` (saved last). ``--overwrite`` replaces only such a folder, and deletes only what fkd-hf wrote:
its shards, temporary files, the two JSON files and its ``README.md`` when that is the card it wrote (its digest is
in ``fkd_labels.json``). Any other file stays; any other non-empty folder is refused. Temporary files left by a
killed run (or a full disk) are fkd-hf's own: a rerun deletes them, also before ``fkd_run.json`` was ever saved.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..labels.format import CARD_FILE, DATA_DIR, METADATA_FILE, RUN_FILE, SHARD_NAME, TEMPORARY_SHARD, card_digest

__all__ = ["prepare_output", "owned_files", "shard_progress"]

NOT_COMPARED = ("skip_bad_images",)  # in run files of fkd-hf 0.2; a resume may change it
LISTED = 8  # files named in a refusal


def _listing(folder: Path, paths: list[Path] | None = None) -> str:
    """``paths`` (default: every file in ``folder``) relative to ``folder``, the first LISTED of them."""
    paths = [p for p in folder.rglob("*") if not p.is_dir()] if paths is None else paths
    files = sorted(str(p.relative_to(folder)) for p in paths)
    more = f" and {len(files) - LISTED} more" if len(files) > LISTED else ""
    return ", ".join(files[:LISTED]) + more


def _read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None when there is no such file, {} when it cannot be read."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(value, indent=2, allow_nan=False) + "\n"  # NaN is not JSON
    try:
        tmp.write_text(text)
    except OSError:  # a full disk: leave no half-written file
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _temporary_files(output_dir: Path) -> list[Path]:
    data = [p for p in (output_dir / DATA_DIR).glob(".shard-*") if TEMPORARY_SHARD.fullmatch(p.name)]
    return data + [p for p in (output_dir / f"{METADATA_FILE}.tmp", output_dir / f"{RUN_FILE}.tmp") if p.is_file()]


def _foreign(output_dir: Path) -> list[Path]:
    """What ``output_dir`` holds besides fkd-hf's temporary files and its empty data folder: files and empty
    folders."""
    ours = {*_temporary_files(output_dir), output_dir / DATA_DIR}
    return [p for p in output_dir.rglob("*") if p not in ours and (not p.is_dir() or not any(p.iterdir()))]


def owned_files(output_dir: str | os.PathLike) -> list[Path]:
    """The files of ``output_dir`` that fkd-hf wrote: shards, temporary files, ``fkd_labels.json``,
    ``fkd_run.json`` and ``README.md`` if its digest is the one ``fkd_labels.json`` records."""
    output_dir = Path(output_dir)
    files = [p for p in (output_dir / DATA_DIR).glob("shard-*") if SHARD_NAME.fullmatch(p.name)]
    files += _temporary_files(output_dir)
    files += [p for p in (output_dir / METADATA_FILE, output_dir / RUN_FILE) if p.is_file()]
    recorded = (_read_json(output_dir / METADATA_FILE) or {}).get("card_digest")
    if recorded is not None and card_digest(output_dir) == recorded:
        files.append(output_dir / CARD_FILE)
    return sorted(files)


def _clear_label_set(output_dir: Path) -> None:
    """Deletes the files fkd-hf wrote in the label set ``output_dir`` (for ``--overwrite``), keeping any other."""
    owned = owned_files(output_dir)
    card = output_dir / CARD_FILE
    if card.exists() and card not in owned:
        raise FileExistsError(
            f"{card} is not the card fkd-hf wrote for this label set (or was edited): move it out of {output_dir} "
            "first; --overwrite deletes only files fkd-hf wrote."
        )
    for path in owned:
        path.unlink()
    data = output_dir / DATA_DIR
    if data.is_dir() and not any(data.iterdir()):
        data.rmdir()
    if any(output_dir.iterdir()):
        print(
            f"--overwrite: deleted the {len(owned)} files of the old label set in {output_dir}; kept "
            f"{_listing(output_dir)}."
        )


def prepare_output(output_dir: str | os.PathLike, fingerprint: dict, overwrite: bool) -> bool:
    """Makes ``output_dir`` ready for the run of ``fingerprint`` (its options); returns True when the folder
    already holds a run of these options, finished or not (to resume or verify), False when it starts afresh."""
    output_dir = Path(output_dir)
    previous = _read_json(output_dir / RUN_FILE)
    if previous is not None:
        changed = sorted(
            key
            for key in set(previous) | set(fingerprint)
            if key not in NOT_COMPARED and previous.get(key) != fingerprint.get(key)
        )
        if not changed:
            for path in _temporary_files(output_dir):  # left by a killed run; no process is writing yet
                path.unlink()
            (output_dir / DATA_DIR).mkdir(exist_ok=True)
            return True
        if not overwrite:
            raise FileExistsError(
                f"{output_dir} holds a label set made with different options ({', '.join(changed)}). Use another "
                "--output_dir, rerun with the original options to resume, or pass --overwrite to replace it."
            )
    if previous is not None or (output_dir / METADATA_FILE).is_file():
        if not overwrite:
            raise FileExistsError(
                f"{output_dir} holds a label set that `fkd-hf generate` did not start there (no {RUN_FILE}): use "
                "another --output_dir, or pass --overwrite to replace it."
            )
        _clear_label_set(output_dir)
    elif output_dir.is_dir():
        foreign = _foreign(output_dir)
        if foreign:
            raise FileExistsError(
                f"{output_dir} is not empty and is not an FKD label set (it holds {_listing(output_dir, foreign)}): "
                "choose a new or empty --output_dir; --overwrite replaces only a label set."
            )
        for path in _temporary_files(output_dir):  # left by a run stopped before it saved its options
            path.unlink()
    (output_dir / DATA_DIR).mkdir(parents=True, exist_ok=True)
    _write_json(output_dir / RUN_FILE, fingerprint)
    return False


def recorded_replay(output_dir: str | os.PathLike) -> str | None:
    """The replay of the run ``output_dir`` holds, finished or not (None: no run there), so that a rerun without
    ``--replay`` resumes a run made while another replay was the default."""
    previous = _read_json(Path(output_dir) / RUN_FILE)
    return None if previous is None else previous.get("replay")


def shard_progress(output_dir: str | os.PathLike) -> tuple[int, int | None]:
    """``(shards on disk, shards in all)`` of a run in ``output_dir``; the total is None when unknown (a stream)."""
    output_dir = Path(output_dir)
    kept = sum(1 for p in (output_dir / DATA_DIR).glob("shard-*") if SHARD_NAME.fullmatch(p.name))
    run = _read_json(output_dir / RUN_FILE) or {}
    rows, per_shard = run.get("num_rows"), run.get("rows_per_shard")
    return kept, math.ceil(rows / per_shard) if rows and per_shard else None
