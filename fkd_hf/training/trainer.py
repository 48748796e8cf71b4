"""``FKDTrainer``: the Hugging Face Trainer with FKD's loss; optimizer, Accelerate, mixed precision, accumulation,
checkpointing and logging all stay with ``Trainer``."""

from __future__ import annotations

import os
import shutil

import numpy as np
import torch
from transformers import EvalPrediction, Trainer, TrainerCallback
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from ..models.embeddings import pooled_embedding
from ..models.pixels import normalize
from ..models.students import student_data_config
from .checkpoints import STAGING_DIR, STATE_FILE, last_complete_checkpoint, publish
from .config import FKDConfig
from .data import EvalDataset, FKDCropDataset, collate_crops
from .embedding_metrics import embedding_scores
from .loss import mix_crops, sample_mix
from .progress import TrainingProgress, no_library_bars_off_terminal
from .targets import target_loss

__all__ = ["FKDTrainer", "NonFiniteLossError", "PassCallback", "top5_indices", "topk_accuracy"]


class NonFiniteLossError(ValueError):
    """Training stopped at a loss that is NaN or infinite, before the step changed the weights."""


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

    ``train_dataset`` is an :class:`~fkd_hf.training.data.FKDCropDataset`; its label set sets the target type
    (for class probabilities: the soft-label kind and class count, which must match the student's head). Training
    batches (from :func:`~fkd_hf.training.data.collate_crops`) carry uint8 crops and their stored targets;
    :meth:`compute_loss` normalises the crops on the device with ``args.mean``/``args.std`` (default: the
    student's), decodes the dense targets there, applies Mixup/CutMix when enabled and returns the target type's
    loss (FKD's soft cross-entropy for class probabilities). Evaluation batches carry hard ``labels`` and use the
    model's own loss; metrics are top-1 and top-5.

    A checkpoint is complete or absent (:mod:`~fkd_hf.training.checkpoints`); a non-finite training loss stops
    training with :class:`NonFiniteLossError` before its step is applied; the progress bars are labelled and write
    plain lines off a terminal (:class:`~fkd_hf.training.progress.TrainingProgress`).
    """

    def __init__(
        self,
        model,
        args: FKDConfig,
        train_dataset: FKDCropDataset | None = None,
        reference_dataset: EvalDataset | None = None,
        **kwargs,
    ):
        if not isinstance(args, FKDConfig):
            raise TypeError(f"FKDTrainer needs an FKDConfig, got {type(args).__name__}.")
        kwargs.setdefault("data_collator", collate_crops)
        kwargs.setdefault("compute_metrics", topk_accuracy)
        kwargs.setdefault("preprocess_logits_for_metrics", top5_indices)
        if train_dataset is not None:
            metadata = train_dataset.metadata
            num_labels = model.config.num_labels
            if num_labels != metadata.num_classes and metadata.target.label_free:
                raise ValueError(
                    f"The student's projection head has {num_labels} outputs but the label set's targets have "
                    f"{metadata.num_classes} dimensions: create the student with one output per dimension "
                    "(fkd_hf.training.build_trainer does)."
                )
            if num_labels != metadata.num_classes:
                raise ValueError(
                    f"The student's head has {num_labels} classes but the label set has {metadata.num_classes} "
                    f"({', '.join(metadata.class_names[:5])}{', ...' if metadata.num_classes > 5 else ''}): create "
                    "the student with the label set's classes (fkd_hf.create_student(spec, "
                    "labels.metadata.class_names)), or use a label set generated for this head."
                )
            self.label_metadata, self.target_loss = metadata, target_loss(metadata.target_type)
        self.reference_dataset = reference_dataset
        model.to(memory_format=torch.channels_last)  # in place: faster convolutions on GPUs and CPUs (oneDNN)
        self._staging = False  # while a checkpoint is written: see _save_checkpoint
        super().__init__(model=model, args=args, train_dataset=train_dataset, **kwargs)
        if train_dataset is not None:
            self.add_callback(PassCallback(train_dataset))
        if self.pop_callback(ProgressCallback) is not None:
            self.add_callback(TrainingProgress())
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
            args.mixup_alpha,
            args.cutmix_alpha,
            args.mix_prob,
            pixels.shape[-2],
            pixels.shape[-1],
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

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The Trainer's step, stopped with :class:`NonFiniteLossError` (naming the step and the likely cause) when
        the loss is not finite, before the optimizer applies it."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.is_training_batch(inputs) and not torch.isfinite(loss).all():
            raise NonFiniteLossError(self._non_finite_message(inputs, loss))
        return loss

    def _non_finite_message(self, inputs: dict, loss: torch.Tensor) -> str:
        args = self.args
        bad_targets = torch.stack(
            [~torch.isfinite(inputs[name].float()).all(-1) for name in self.label_metadata.target.columns]
        ).any(0)
        if bad_targets.any():
            bad = int(bad_targets.sum())
            cause = (
                f"{bad} of the batch's {len(bad_targets)} crops have non-finite targets in the label set "
                f"{args.label_set}: regenerate it (fkd-hf generate refuses such values)"
            )
        elif not torch.isfinite(self._pixel_stats).all() or not self._pixel_stats[1].all():
            cause = f"--mean/--std ({self._pixel_stats.tolist()}) hold a non-finite value or a std of 0"
        else:
            cause = (
                f"the batch's targets are finite, so the student diverged: lower --learning_rate "
                f"({args.learning_rate:g})" + (" or train in bf16 or fp32 rather than fp16" if args.fp16 else "")
            )
        last = last_complete_checkpoint(args.output_dir)
        kept = f"{last} is kept (the last complete checkpoint)." if last else "No checkpoint was saved."
        return f"training stopped at step {self.state.global_step + 1}: the loss is {loss.item()}; {cause}. {kept}"

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """The Trainer's evaluation (loss, top-1, top-5); for a student of a label-free set, the k-NN and linear-probe
        top-1 of its frozen backbone (fitted on the labelled training split, ``reference_dataset``)."""
        metadata = getattr(self, "label_metadata", None)
        if metadata is None or not metadata.target.label_free:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in self.embedding_metrics(dataset).items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def embedding_metrics(self, dataset: EvalDataset) -> dict[str, float]:
        """``knn_top1`` (cosine, k = 20, DINO's weighting) and ``probe_top1`` of the backbone's pooled features on
        ``dataset``, fitted on :attr:`reference_dataset`'s; empty without one."""
        if self.reference_dataset is None:
            return {}
        return embedding_scores(*self.backbone_features(self.reference_dataset), *self.backbone_features(dataset))

    @torch.no_grad()  # not inference mode: the linear probe fits on these features with autograd
    def backbone_features(self, dataset: EvalDataset) -> tuple[torch.Tensor, torch.Tensor]:
        """The student backbone's pooled features ``[N, F]`` (float32, on the CPU) and labels of a labelled split."""
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=self.args.per_device_eval_batch_size,
            collate_fn=collate_crops,
            num_workers=self.args.dataloader_num_workers,
        )
        features, labels = [], []
        device = next(model.parameters()).device
        with self.autocast_smart_context_manager():
            for batch in loader:
                pixels = self.normalize_pixels(batch["pixel_values"].to(device))
                features.append(pooled_embedding(model, pixels).float().cpu())
                labels.append(batch["labels"])
        model.train(was_training)
        return torch.cat(features), torch.cat(labels)

    def _get_output_dir(self, trial):
        """The run's folder; its staging folder while a checkpoint is written (see :meth:`_save_checkpoint`)."""
        run_dir = super()._get_output_dir(trial)
        return os.path.join(run_dir, STAGING_DIR) if self._staging else run_dir

    def _save_checkpoint(self, model, trial):
        """The Trainer's checkpoint, written under ``output_dir/_checkpoint-in-progress/`` and moved to
        ``checkpoint-N`` once every process's files are in; then pushed (``push_to_hub``) and rotated."""
        run_dir = super()._get_output_dir(trial)
        name, staging = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}", os.path.join(run_dir, STAGING_DIR)
        staged, final = os.path.join(staging, name), os.path.join(run_dir, name)
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)  # what a killed run's save left
        self.accelerator.wait_for_everyone()
        self._staging = True
        try:
            with no_library_bars_off_terminal():
                super()._save_checkpoint(model, trial)
        except BaseException:  # Ctrl-C, SIGTERM, a full disk: leave no half-written checkpoint
            if self.args.should_save:
                shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            self._staging = False
        self.accelerator.wait_for_everyone()
        if not self.args.should_save:
            return
        if self.state.best_model_checkpoint == staged:  # the Trainer recorded the staging path: record the final one
            self.state.best_model_checkpoint = final
            self.state.save_to_json(os.path.join(staged, STATE_FILE))
        publish(staged, final)
        if self.args.push_to_hub:
            self._push_from_checkpoint(final)
        rotate_checkpoints(run_dir, self.args.save_total_limit, self.state.best_model_checkpoint, use_mtime=True)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """Pushes a checkpoint from its final place only (a staged one is pushed once moved)."""
        if not self._staging:
            super()._push_from_checkpoint(checkpoint_folder)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds ``fkd_epoch`` (passes x num_crops) next to the Trainer's ``epoch`` (passes)."""
        if self.state.epoch is not None:
            logs = {**logs, "fkd_epoch": round(self.state.epoch * self.args.num_crops, 4)}
        super().log(logs, start_time)
