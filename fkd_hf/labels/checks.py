"""Label-set checks: every shard's footer, shape, row count and recorded fields against ``fkd_labels.json``, and
errors that name the damaged file and field and say how to repair."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .schema import (
    DATA_DIR,
    DIGESTED_FIELDS,
    LABEL_SET_KEY,
    METADATA_FILE,
    RUN_FILE,
    SHARD_NAME,
    SHARD_PATTERN,
    LabelSetMetadata,
)
from .targets import DEFAULT_TARGET_TYPE

__all__ = ["LabelSetError", "check_label_set", "repair_hint", "shard_problems"]


class LabelSetError(ValueError):
    """A label set whose files are damaged or disagree with its ``fkd_labels.json``."""


def _shard_problem(path: Path, metadata: LabelSetMetadata, last: bool | None, against: str) -> str | None:
    """What is wrong with one shard (``last``: it is the last one; None: unknown), or None."""
    try:
        parquet = pq.ParquetFile(path)
        schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
        shape = {"stored_crops": schema.field("crops").type.list_size}
        for column, field in metadata.target.sizes.items():  # R x size columns: the size is a metadata field
            shape[field] = schema.field(column).type.value_type.list_size
    except (OSError, pa.ArrowException) as err:
        return f"is unreadable (truncated or not parquet: {' '.join(str(err).split())})"
    except (KeyError, AttributeError):
        return f"lacks the label columns {list(metadata.columns)} (it has {schema.names})"
    recorded = json.loads((schema.metadata or {}).get(LABEL_SET_KEY, b"{}"))
    values = {"target_type": DEFAULT_TARGET_TYPE, **recorded, **shape}  # shards of the default type do not say it
    expected = {
        **metadata.defining(),
        "target_type": metadata.target_type,
        **{name: getattr(metadata, name) for name in shape},
    }
    changed = [name for name in expected if name in values and values[name] != expected[name]]
    if changed:
        name, also = changed[0], f" (also {', '.join(changed[1:])})" if changed[1:] else ""
        if name in DIGESTED_FIELDS:
            return f"was made with other {name} than {against} lists{also}"
        return f"was made with {name}={values[name]!r}, but {against} says {name}={expected[name]!r}{also}"
    size, expected = metadata.rows_per_shard, None
    if size and last is False:
        expected = size
    elif size and last and metadata.num_rows:
        expected = metadata.num_rows - int(SHARD_NAME.fullmatch(path.name).group(1)) * size
    if size and (rows != expected if expected is not None else not 0 < rows <= size):
        return f"holds {rows} rows, not {expected if expected is not None else f'1 to {size}'}"
    return None


def shard_problems(
    directory: str | os.PathLike,
    metadata: LabelSetMetadata,
    num_shards: int | None = None,
    against: str = METADATA_FILE,
) -> dict[str, str]:
    """What is wrong with the shards in ``directory``, by file name, against ``metadata``: a footer that cannot be
    read, another R or k, another value of a field the shard records (:meth:`LabelSetMetadata.defining`), a wrong
    row count. With ``num_shards``, shards 0 .. num_shards - 1 must all be there ("is missing") and no other
    parquet file; without it, the shards on disk are checked. ``against`` names the expected values' source.
    """
    files = sorted((Path(directory) / DATA_DIR).glob("*.parquet"))
    on_disk = {int(m.group(1)): p for p in files if (m := SHARD_NAME.fullmatch(p.name))}
    problems = {p.name: "is not a shard of this label set: move it out" for p in files if p not in on_disk.values()}
    for shard in sorted(set(range(num_shards or 0)) | set(on_disk)):
        name, path = SHARD_PATTERN.format(shard), on_disk.get(shard)
        if path is None:
            problems[name] = "is missing"
        elif num_shards is not None and shard >= num_shards:
            problems[name] = f"is not part of the label set ({against} says {num_shards} shards)"
        elif problem := _shard_problem(
            path, metadata, None if num_shards is None else shard == num_shards - 1, against
        ):
            problems[name] = problem
    return problems


def repair_hint(directory: str | os.PathLike) -> str:
    """How to repair the label set in ``directory``."""
    if (Path(directory) / RUN_FILE).is_file():
        return (
            f"To repair it, rerun the `fkd-hf generate` command that made it (same --output_dir; its options "
            f"are in {RUN_FILE}): it relabels only the damaged shards and rewrites {METADATA_FILE}."
        )
    return "Regenerate it with `fkd-hf generate`, or copy or download it again."


def check_label_set(directory: str | os.PathLike, metadata: LabelSetMetadata) -> None:
    """Raises :class:`LabelSetError`, naming each damaged file and field, if the shards disagree with ``metadata``."""
    problems = {
        f"{DATA_DIR}/{name}": text
        for name, text in shard_problems(directory, metadata, metadata.num_shards or None).items()
    }
    if not problems and not metadata.rows_per_shard:  # no per-shard row count to check: check the total
        rows = sum(pq.read_metadata(p).num_rows for p in (Path(directory) / DATA_DIR).glob("*.parquet"))
        if rows != metadata.num_rows:
            problems[DATA_DIR] = f"holds {rows} rows, but {METADATA_FILE} says num_rows={metadata.num_rows}"
    if problems:
        files: dict[str, list[str]] = {}  # problem -> the files that have it
        for name, text in problems.items():
            files.setdefault(text, []).append(name)
        listed = "; ".join(
            f"{names[0]}{f' (and {len(names) - 1} more)' if names[1:] else ''} {text}"
            for text, names in list(files.items())[:3]
        )
        edited = any(METADATA_FILE in text for text in problems.values())
        cause = f" {METADATA_FILE} was edited, or the shards come from another run." if edited else ""
        raise LabelSetError(f"{directory}: {listed}.{cause} {repair_hint(directory)}")
