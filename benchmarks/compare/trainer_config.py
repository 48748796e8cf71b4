"""The protocol's ``FKDConfig``: what every trained row of a benchmark shares (student, optimizer and schedule,
crops per step, length, loader workers, seed), from a run context with ``settings``, ``work`` and ``images``. The
comparison and the self-supervised benchmark build their rows' configs here, so their protocols stay one."""

from __future__ import annotations

from fkd_hf.training import FKDConfig

__all__ = ["protocol_config", "steps_per_epoch"]


def steps_per_epoch(ctx) -> int:
    """Optimizer steps of one epoch (N crops, N = training images) for every method."""
    n, batch_crops = len(ctx.images.dataset), ctx.settings.batch_crops
    if n % batch_crops:
        raise ValueError(f"The {n} training images must be a multiple of batch_crops ({batch_crops}).")
    return n // batch_crops


def protocol_config(ctx, name: str, m: int, max_steps: int | None = None, curve: bool = False, **fields) -> FKDConfig:
    """Row ``name``'s config at ``m`` crops per decoded image: the protocol's values, with ``fields`` (a row's own
    settings) beside them; ``curve`` evaluates after every ``eval_every`` epochs."""
    s, epoch = ctx.settings, steps_per_epoch(ctx)
    return FKDConfig(
        **fields,
        output_dir=str(ctx.work / "runs" / name),
        student=s.student,
        input_size=s.input_size,
        seed=s.seed,
        per_device_train_batch_size=s.batch_crops // m,
        per_device_eval_batch_size=s.eval_batch_size,
        num_crops=m,
        max_steps=max_steps or s.epochs * epoch,
        optim=s.optim,
        learning_rate=s.learning_rate,
        weight_decay=s.weight_decay,
        warmup_steps=s.warmup,
        lr_scheduler_type="cosine",
        use_cpu=True,
        dataloader_num_workers=s.workers,
        dataloader_persistent_workers=s.workers > 0,
        eval_strategy="steps" if curve else "no",
        eval_steps=epoch * (getattr(s, "eval_every", None) or 1),
        logging_steps=epoch,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        log_level="warning",
    )
