"""The one builder of a new label set's metadata, for every producer (``generate``, ``import-fkd``): where its rows
come from and which teacher made the labels, with what the producer itself decides (kind, classes, crops...)."""

from __future__ import annotations

import dataclasses

from ..labels.format import LabelSetMetadata
from ..labels.images import ImageSource, absolute_dataset_spec
from ..version import __version__

__all__ = ["RecordedTeacher", "build_metadata"]


@dataclasses.dataclass(frozen=True)
class RecordedTeacher:
    """A teacher as a label set records it, for labels made elsewhere (a :class:`~fkd_hf.models.teachers.Teacher`
    has the same fields)."""

    name: str
    revision: str | None
    library: str
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str


def build_metadata(
    source: ImageSource, teacher, rows_per_shard: int, max_rows: int | None, **fields
) -> LabelSetMetadata:
    """The metadata of a label set of ``source``'s rows in shards of ``rows_per_shard``, labelled by ``teacher`` (a
    Teacher or a :class:`RecordedTeacher`); ``fields`` are the others (kind, k, classes, temperature, crops...)."""
    return LabelSetMetadata(
        teacher=teacher.name,
        teacher_revision=teacher.revision,
        teacher_library=teacher.library,
        teacher_input_size=list(teacher.input_size),
        teacher_mean=list(teacher.mean),
        teacher_std=list(teacher.std),
        teacher_interpolation=teacher.interpolation,
        dataset=source.spec,
        dataset_config=source.config,
        dataset_split=source.split,
        dataset_revision=source.revision,
        image_column=source.image_column,
        label_column=source.label_column,
        num_rows=source.num_rows or 0,
        rows_per_shard=rows_per_shard,
        fkd_hf_version=__version__,
        max_rows=max_rows,
        dataset_absolute=absolute_dataset_spec(source.spec),
        **fields,
    )
