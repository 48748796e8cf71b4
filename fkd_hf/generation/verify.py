"""What a rerun of ``fkd-hf generate`` checks in a folder that already holds its run, finished or not.

Every shard on disk is checked against the run's options (footer, R and k, the fields it records, row count); a
finished set must have all its shards; image keys are compared with the images (a sample, all or none). Each bad
shard is deleted, so that the run labels it again, and so is ``fkd_labels.json`` when anything is redone or it
disagrees with the run: the set is then finished anew, exactly as an uninterrupted run would have written it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..labels.checks import shard_problems
from ..labels.format import DATA_DIR, METADATA_FILE, SHARD_NAME, LabelSetMetadata, read_local_metadata, shard_path
from ..labels.images import BadImageError, ImageSource, image_bytes, image_key
from .config import VERIFY_SAMPLE
from .prefetch import prefetch_map

__all__ = ["Verification", "verify_output"]

AGAINST = "this run's options"


@dataclasses.dataclass
class Verification:
    """What :func:`verify_output` found: one line per file redone, and how many image keys it compared."""

    problems: list[str]
    shards_checked: int
    keys_checked: int


def _metadata_problem(output_dir: Path, metadata: LabelSetMetadata, fingerprint: dict, num_shards: int | None):
    try:
        stored = read_local_metadata(output_dir)
    except ValueError as err:  # not JSON, missing fields, an unknown kind
        return f"cannot be read ({err})"
    values = stored.to_dict()
    unknown = {"num_rows"} if not metadata.num_rows else set()  # a stream's length is known once it is read
    changed = [key for key in fingerprint if key in values and key not in unknown and values[key] != fingerprint[key]]
    if num_shards is not None and stored.num_shards != num_shards:
        changed.append("num_shards")
    return f"disagrees with {AGAINST} ({', '.join(changed)})" if changed else None


def _image_key(value: dict) -> str:
    try:
        return image_key(image_bytes(value))
    except BadImageError:  # stored as "" for a row skipped because its file could not be read
        return ""


def _source_keys(source: ImageSource, rows: list[int], num_workers: int) -> list[str]:
    """The image keys of ``rows`` (ascending) of ``source``, hashed in ``num_workers`` threads."""
    images = source.dataset.select_columns([source.image_column])
    if source.num_rows is not None:
        values = (
            value
            for start in range(0, len(rows), 256)
            for value in images[rows[start : start + 256]][source.image_column]
        )
    else:  # a stream: read it up to the last row wanted
        wanted = set(rows)
        values = (example[source.image_column] for row, example in zip(range(rows[-1] + 1), images) if row in wanted)
    return list(prefetch_map(_image_key, values, num_workers, ahead=4 * max(num_workers, 1)))


def _changed_rows(
    output_dir: Path, source: ImageSource, shards: list[int], rows_per_shard: int, mode: str, num_workers: int
) -> tuple[dict[int, list[int]], int]:
    """``({shard: rows whose image key changed}, keys compared)`` over ``shards`` (on disk, sound)."""
    keys = {
        shard: pq.read_table(shard_path(output_dir, shard), columns=["image_key"]).column(0).to_pylist()
        for shard in shards
    }
    rows = np.array([shard * rows_per_shard + i for shard in shards for i in range(len(keys[shard]))], dtype=np.int64)
    if mode == "sample" and len(rows) > VERIFY_SAMPLE:  # spread over the set; the first rows of a stream
        spread = np.linspace(0, len(rows) - 1, VERIFY_SAMPLE).round().astype(np.int64)
        rows = rows[:VERIFY_SAMPLE] if source.num_rows is None else rows[spread]
    if mode == "none" or not len(rows):
        return {}, 0
    changed: dict[int, list[int]] = {}
    for row, found in zip(rows.tolist(), _source_keys(source, rows.tolist(), num_workers)):
        shard = row // rows_per_shard
        if keys[shard][row - shard * rows_per_shard] != found:
            changed.setdefault(shard, []).append(row)
    return changed, len(rows)


def verify_output(
    output_dir: str | Path,
    metadata: LabelSetMetadata,
    fingerprint: dict,
    source: ImageSource,
    mode: str,
    num_shards: int | None,
    num_workers: int = 2,
) -> Verification:
    """Checks the run already in ``output_dir`` (see the module docstring) and deletes what must be redone.

    ``metadata`` and ``fingerprint`` are the run's (from its options), ``num_shards`` the shard count of the source
    (None for a stream), ``mode`` the ``--verify_images`` choice.
    """
    output_dir = Path(output_dir)
    finished = (output_dir / METADATA_FILE).is_file()
    if finished and num_shards is None:  # a finished stream: its metadata says how many shards it has
        try:
            num_shards = read_local_metadata(output_dir).num_shards or None
        except ValueError:
            pass
    problems = shard_problems(output_dir, metadata, num_shards, against=AGAINST)
    foreign = [name for name in problems if not SHARD_NAME.fullmatch(name)]
    if foreign:
        raise FileExistsError(
            f"{output_dir}/{DATA_DIR} holds {', '.join(foreign)}, which fkd-hf did not write: move "
            "it out of the label set and rerun."
        )
    if not finished:  # shards not written yet are not damaged
        problems = {name: text for name, text in problems.items() if text != "is missing"}
    on_disk = [SHARD_NAME.fullmatch(p.name) for p in (output_dir / DATA_DIR).glob("shard-*.parquet")]
    sound = sorted(int(m.group(1)) for m in on_disk if m and m.group(0) not in problems)
    changed, checked = _changed_rows(output_dir, source, sound, metadata.rows_per_shard, mode, num_workers)
    for shard, rows in changed.items():
        listed = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        problems[shard_path(output_dir, shard).name] = f"holds the keys of other images (rows {listed})"
    for name in problems:
        (output_dir / DATA_DIR / name).unlink(missing_ok=True)
    lines = [f"{DATA_DIR}/{name} {text}" for name, text in sorted(problems.items())]
    if finished:
        problem = _metadata_problem(output_dir, metadata, fingerprint, num_shards)
        if problem:
            lines.append(f"{METADATA_FILE} {problem}")
        if problems or problem:
            (output_dir / METADATA_FILE).unlink()
    return Verification(lines, len(sound), checked)
