"""``FKDTrainer``: the Hugging Face Trainer with FKD's loss; optimizer, Accelerate, mixed precision, accumulation,
checkpointing and logging all stay with ``Trainer``."""

from __future__ import annotations

import numpy as np
import torch
from transformers import EvalPrediction, Trainer, TrainerCallback

from ..models.pixels import normalize
from .data import FKDCropDataset, collate_crops
from .loss import mix_crops, sample_mix
from ..models.students import student_data_config
from .config import FKDConfig
from .targets import target_loss

__all__ = ["FKDTrainer", "PassCallback", "top5_indices", "topk_accuracy"]


def top5_indices(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keeps the five best classes per image instead of all logits (``preprocess_logits_for_metrics``)."""
    return logits.topk(min(5, logits.shape[-1]), dim=-1).indices


def topk_accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """Top-1 and top-5 accuracy (fractions) from the top-5 class indices that ``top5_indices`` keeps."""
    top5, labels = np.asarray(prediction.predictions), np.asarray(prediction.label_ids)
    hits = top5 == labels[:, None]
    return {"top1": float(hits[:, 0].mean()), "top5": float(hits.any(axis=1).mean())}


class PassCallback(TrainerCallback):
    """Tells the training set which pass over the data begins, so every image replays that pass's crops, and
    whether it is the single-crop tail (``args.single_crop_tail`` and the run's last pass)."""

    def __init__(self, dataset: FKDCropDataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        pass_index = int(state.epoch or 0)
        tail = args.single_crop_tail and pass_index == state.num_train_epochs - 1
        self.dataset.set_pass(pass_index, tail)


class FKDTrainer(Trainer):
    """Trains a student on stored FKD soft labels.

    ``train_dataset`` is an :class:`~fkd_hf.loader.FKDCropDataset`; its label set sets the target type (for class
    probabilities: the soft-label kind and class count, which must match the student's head). Training batches (from
    :func:`~fkd_hf.loader.collate_crops`) carry uint8 crops and their stored targets; :meth:`compute_loss`
    normalises the crops on the device with ``args.mean``/``args.std`` (default: the student's), decodes the dense
    targets there, applies Mixup/CutMix when enabled and returns the target type's loss (FKD's soft cross-entropy
    for class probabilities). Evaluation batches carry hard ``labels`` and use the model's own loss; metrics are
    top-1 and top-5.
    """

    def __init__(self, model, args: FKDConfig, train_dataset: FKDCropDataset | None = None, **kwargs):
        if not isinstance(args, FKDConfig):
            raise TypeError(f"FKDTrainer needs an FKDConfig, got {type(args).__name__}.")
        kwargs.setdefault("data_collator", collate_crops)
        kwargs.setdefault("compute_metrics", topk_accuracy)
        kwargs.setdefault("preprocess_logits_for_metrics", top5_indices)
        if train_dataset is not None:
            metadata = train_dataset.metadata
            num_labels = model.config.num_labels
            if num_labels != metadata.num_classes:
                raise ValueError(
                    f"The student's head has {num_labels} classes but the label set has {metadata.num_classes} "
                    f"({', '.join(metadata.class_names[:5])}{', ...' if metadata.num_classes > 5 else ''}): create "
                    "the student with the label set's classes (fkd_hf.create_student(spec, "
                    "labels.metadata.class_names)), or use a label set generated for this head."
                )
            self.label_metadata, self.target_loss = metadata, target_loss(metadata.target_type)
        model.to(memory_format=torch.channels_last)  # in place: faster convolutions on GPUs and CPUs (oneDNN)
        super().__init__(model=model, args=args, train_dataset=train_dataset, **kwargs)
        if train_dataset is not None:
            self.add_callback(PassCallback(train_dataset))
        data = student_data_config(self.model, mean=args.mean, std=args.std)
        self._pixel_stats = torch.tensor([data["mean"], data["std"]], dtype=torch.float32)
        self._device_stats: dict[torch.device, torch.Tensor] = {}

    def _get_train_sampler(self, train_dataset=None):
        """The sampler the training set's crop layout needs (in order, for the spread layout); the Trainer's
        otherwise."""
        dataset = self.train_dataset if train_dataset is None else train_dataset
        sampler = dataset.train_sampler() if isinstance(dataset, FKDCropDataset) else None
        return super()._get_train_sampler(train_dataset) if sampler is None else sampler

    def normalize_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 crops -> the student's float input, on their device (``args.mean``/``args.std``)."""
        stats = self._device_stats.get(pixels.device)
        if stats is None:
            stats = self._device_stats[pixels.device] = self._pixel_stats.to(pixels.device)
        return normalize(pixels, stats[0], stats[1])

    def is_training_batch(self, inputs: dict) -> bool:
        """Whether ``inputs`` is a training batch (crops with stored targets and ``sample_ids``, as
        :func:`~fkd_hf.training.collate_crops` makes it) rather than an evaluation batch (hard labels)."""
        return "sample_ids" in inputs

    def targets(self, inputs: dict) -> torch.Tensor:
        """The dense targets ``[N, D]`` of a training batch: its stored values, decoded by the label set's target
        type (for class probabilities: the stored top-k, reconstructed over the classes)."""
        return self.label_metadata.target.decode(inputs, self.label_metadata)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The target type's loss on a training batch (FKD's soft cross-entropy for class probabilities); the
        model's own loss on an evaluation batch.

        The loss is the mean over the batch's crops, or their sum divided by ``num_items_in_batch`` when the
        Trainer passes a count (then, as upstream, times the process count when counts are averaged across them).
        """
        if not self.is_training_batch(inputs):
            inputs = {**inputs, "pixel_values": self.normalize_pixels(inputs["pixel_values"])}
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        pixels = self.normalize_pixels(inputs["pixel_values"])
        targets = self.targets(inputs)
        args = self.args
        mix = sample_mix(
            np.random.default_rng([args.seed, *inputs.get("sample_ids", ())]),
            args.mixup_alpha, args.cutmix_alpha, args.mix_prob, pixels.shape[-2], pixels.shape[-1],
        )
        if mix is not None:
            pixels, targets = mix_crops(pixels, targets, *mix)
        outputs = model(pixel_values=pixels)
        if num_items_in_batch is None:
            loss = self.target_loss(outputs.logits, targets, args, "mean")
        else:
            loss = self.target_loss(outputs.logits, targets, args, "sum") / num_items_in_batch
            if args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds ``fkd_epoch`` (passes x num_crops) next to the Trainer's ``epoch`` (passes)."""
        if self.state.epoch is not None:
            logs = {**logs, "fkd_epoch": round(self.state.epoch * self.args.num_crops, 4)}
        super().log(logs, start_time)
