"""A Trainer callback that fills a student's :class:`~fkd_hf.hub.student_info.StudentInfo` during training and
writes its ``fkd_student.json`` and model card into ``args.output_dir``."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..hub.model_card import write_student_card
from ..hub.student_info import StudentInfo, timm_architecture
from ..labels.format import LabelSetMetadata, read_metadata
from .config import FKDConfig
from .layouts import plan_layout
from .resolved import ResolvedRun

logger = logging.getLogger(__name__)

__all__ = ["StudentCardCallback"]


def _model_info(model) -> dict[str, Any]:
    """Architecture, library and classes of a timm model, transformers' TimmWrapper or a transformers model."""
    config = getattr(model, "config", None)
    if hasattr(model, "pretrained_cfg") and config is None:  # a bare timm model
        return {
            "architecture": timm_architecture(model.pretrained_cfg),
            "library_name": "timm",
            "num_classes": getattr(model, "num_classes", None),
        }
    if config is None:
        return {}
    id2label = getattr(config, "id2label", None) or {}
    names = [id2label[i] for i in sorted(id2label)]
    info = {"num_classes": getattr(config, "num_labels", None) or len(names) or None}
    if names and not all(re.fullmatch(r"LABEL_\d+", str(n)) for n in names):
        info["class_names"] = names
    if getattr(config, "model_type", None) == "timm_wrapper":
        info |= {"architecture": config.architecture, "library_name": "timm"}
    else:
        info |= {"architecture": config.model_type, "library_name": "transformers"}
    return info


class StudentCardCallback(TrainerCallback):
    """Fills ``card_data`` (a :class:`StudentInfo`) during training and writes the student's card.

    - ``on_train_begin``: hyperparameters from the Trainer's arguments (``FKDConfig`` fields when present: label
      set, ``num_crops``, ``temperature``, Mixup/CutMix, ...), the student from the model, and the label set's
      metadata (the training dataset's ``metadata``, else the ``label_set`` given here, else ``args.label_set``).
    - ``on_evaluate``: top-1/top-5 (``eval_top1``/``eval_top5``, or ``eval_accuracy``), or a label-free student's
      k-NN and linear-probe top-1 (``eval_knn_top1``/``eval_probe_top1``), and the eval loss.
    - ``on_save`` and ``on_train_end``: ``fkd_student.json`` + ``README.md`` in ``args.output_dir`` (and in the new
      checkpoint folder on save); after training ends, each evaluation rewrites them.

    ``run`` (:attr:`FKDSetup.resolved <fkd_hf.training.FKDSetup>`) gives the values the run resolved its config to:
    images, evaluation split, input size and crop layout; without it they come from the arguments as given. ``fields``
    set :class:`StudentInfo` fields (``license``, ``model_name``, ``tags``, ...).

    >>> callback = StudentCardCallback(license="apache-2.0")  # doctest: +SKIP
    >>> trainer = Trainer(model, args, callbacks=[callback], ...)  # doctest: +SKIP
    >>> callback.write("outputs/student")  # e.g. after saving the student there  # doctest: +SKIP
    """

    def __init__(
        self,
        card_data: StudentInfo | None = None,
        label_set: LabelSetMetadata | None = None,
        run: ResolvedRun | None = None,
        **fields,
    ):
        self.card_data = card_data if card_data is not None else StudentInfo()
        self.run = run
        for key, value in fields.items():
            if not hasattr(self.card_data, key):
                raise TypeError(f"StudentInfo has no field {key!r}.")
            setattr(self.card_data, key, value)
        self.label_set = label_set
        self._train_ended = False

    def _label_set_metadata(self, args, train_dataloader) -> LabelSetMetadata | None:
        metadata = getattr(getattr(train_dataloader, "dataset", None), "metadata", None)
        if isinstance(metadata, LabelSetMetadata):
            return metadata
        if self.label_set is not None:
            return self.label_set
        source = getattr(args, "label_set", None)
        if not source:
            return None
        try:
            return read_metadata(source, getattr(args, "label_set_revision", None))
        except Exception as err:  # the card is informative: never stop training for it
            logger.warning("Could not read the label set's metadata for the model card: %s", type(err).__name__)
            return None

    def fill_from_model(self, model) -> None:
        """The architecture and library of ``model`` always; its classes where the card has none yet (a label-free
        student's outputs are its projection head's, not classes)."""
        info = self.card_data
        for key, value in _model_info(model).items():
            classes = key not in ("architecture", "library_name")
            if value is not None and not (classes and (getattr(info, key) or info.label_free)):
                setattr(info, key, value)

    def fill_from_run(self, args) -> None:
        """The crop layout (the run's, else the one ``args`` sets) and the images, evaluation split and input size the
        run resolved."""
        info, run = self.card_data, self.run
        layout = run.layout if run is not None else plan_layout(args) if isinstance(args, FKDConfig) else None
        if layout is not None:
            info.crop_layout, info.single_crop_tail = layout.name, layout.single_crop_tail
            info.crop_layout_options = dict(layout.options)
        if run is not None:
            info.input_size = list(run.input_size)
            info.eval_dataset = info.eval_dataset or run.data.dataset
            info.eval_dataset_config = info.eval_dataset_config or run.data.dataset_config
            info.eval_split = info.eval_split or run.data.eval_split or None

    def write(self, output_dir: str | os.PathLike) -> Path:
        """Writes ``fkd_student.json`` and ``README.md`` into ``output_dir`` (fields still unset come from its
        ``config.json``, when it has one); returns the README path."""
        return write_student_card(output_dir, self.card_data)

    # -- TrainerCallback events --

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        self._train_ended = False
        self.card_data.update_from_args(args)
        self.fill_from_run(args)
        if model is not None:
            self.fill_from_model(model)
        metadata = self._label_set_metadata(args, train_dataloader)
        if metadata is not None:
            self.card_data.update_from_label_set(metadata)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics:
            self.card_data.update_from_metrics(metrics)
        if self._train_ended and state.is_world_process_zero:
            self.write(args.output_dir)

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.write(args.output_dir)
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if checkpoint.is_dir():
            self.write(checkpoint)

    def on_train_end(self, args, state, control, **kwargs):
        self._train_ended = True
        if state.is_world_process_zero:
            self.write(args.output_dir)
