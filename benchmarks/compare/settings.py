"""The comparison's protocol: the methods, the two modes (quick and full), the dataset presets (imagenette,
imagewoof), their flags and the resolved settings."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from fkd_hf.labels.kinds import DEFAULT_K

__all__ = [
    "DATA_ROOT",
    "MAIN_METHODS",
    "SAME_CROP_METHODS",
    "METHOD_NAMES",
    "PRESETS",
    "DATASET_PRESETS",
    "COMMON",
    "Settings",
    "add_protocol_arguments",
    "resolve_settings",
    "parse_ablation",
]

DATA_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data"
MAIN_METHODS = ("plain", "vanilla_kd", "relabel", "fkd", "fkd_spread", "fkd_m1", "fkd_tail", "fkd_default")
SAME_CROP_METHODS = ("plain_fkd_crops", "relabel_fkd_crops")
METHOD_NAMES = {  # how the report names each method
    "plain": "plain",
    "vanilla_kd": "vanilla KD",
    "relabel": "ReLabel",
    "fkd": "FKD",
    "fkd_spread": "FKD spread",
    "fkd_m1": "FKD m = 1",
    "fkd_tail": "FKD + single-crop tail",
    "fkd_default": "FKD as shipped",
    "plain_fkd_crops": "plain, FKD's crops",
    "relabel_fkd_crops": "ReLabel, FKD's crops",
}

# Settings of the two modes; every one can be overridden by its flag. R = epochs: every stored crop is replayed
# once (FKD's own schedule), and vanilla KD is FKD kind=full at m = 1 on those crops (see the module doc).
PRESETS = {
    "quick": dict(
        train_per_class=20,
        val_per_class=20,
        epochs=8,
        stored_crops=8,
        num_crops=4,
        batch_crops=20,
        eval_batch_size=100,
        eval_every=1,
        throughput_rounds=2,
        throughput_steps=5,
        controls=True,
        ablation=["kind=hard", "R=4"],
    ),
    "full": dict(
        train_per_class=None,
        val_per_class=None,
        epochs=16,
        stored_crops=16,
        num_crops=4,
        batch_crops=120,
        eval_batch_size=200,
        eval_every=2,
        throughput_rounds=3,
        throughput_steps=8,
        controls=False,
        ablation=[],
    ),
}
# The data and what suits it; a preset's values apply to both modes, its "quick" and "full" dicts to one. kd_margin:
# the points by which vanilla KD must beat plain training for the data to rank what a teacher adds (the regime check
# of the report). imagewoof (ten dog breeds, 320-px photos): 96 px so that a breed's marks survive the crop, and 8
# epochs so that the eight runs fit about 100 minutes on 2 cores.
DATASET_PRESETS = {
    "imagenette": dict(dataset=DATA_ROOT / "imagenette-mini"),
    "imagewoof": dict(
        dataset=DATA_ROOT / "imagewoof-mini", input_size=96, kd_margin=3.0, full=dict(epochs=8, stored_crops=8)
    ),
}
COMMON = dict(
    student="resnet10t",
    input_size=64,
    teacher="efficientnet-lite0",
    relabel_size=None,
    relabel_k=5,
    kind="marginal_smoothing",
    k=5,
    replay="tensor",
    optim="adamw_torch",
    learning_rate=0.006,
    weight_decay=0.05,
    warmup=0.05,
    workers=1,
    threads=None,
    prep_threads=None,
    seed=0,
)


@dataclasses.dataclass
class Settings:
    """The resolved protocol of one run (a preset plus any flags); saved in results.json."""

    mode: str
    preset: str
    dataset: str
    train_per_class: int | None
    val_per_class: int | None
    epochs: int
    stored_crops: int
    num_crops: int
    batch_crops: int
    eval_batch_size: int
    eval_every: int
    throughput_rounds: int
    throughput_steps: int
    controls: bool
    ablation: list[str]
    student: str
    input_size: int
    teacher: str
    relabel_size: int | None
    relabel_k: int
    kind: str
    k: int
    replay: str
    optim: str
    learning_rate: float
    weight_decay: float
    warmup: float
    workers: int
    threads: int | None
    prep_threads: int | None
    seed: int

    @classmethod
    def from_results(cls, results: dict) -> Settings:
        """The settings saved in a results.json (fields it lacks are None; the preset of older ones, imagenette)."""
        values = {field.name: results["settings"].get(field.name) for field in dataclasses.fields(cls)}
        return cls(**{**values, "preset": values["preset"] or "imagenette"})

    @property
    def publish_name(self) -> str:
        """The published files' stem: compare_<mode> on imagenette, compare_<mode>_<preset> on other data."""
        return f"compare_{self.mode}" + ("" if self.preset == "imagenette" else f"_{self.preset}")


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that override the preset, one per :class:`Settings` field."""
    preset = parser.add_argument_group("protocol (defaults from the preset; see the docstring)")
    add = preset.add_argument
    add("--train-per-class", type=int, help="Training images per class (default: quick 20, full all).")
    add("--val-per-class", type=int, help="Validation images per class (default: quick 20, full all).")
    add("--epochs", type=int, help="Epochs of N crops each, for every method (quick 8, full 16).")
    add("--stored-crops", type=int, help="R: crops stored per image by fkd-hf generate (quick 8, full 16).")
    add("--num-crops", type=int, help="m: crops FKD replays per decoded image and pass (4).")
    add("--batch-crops", type=int, help="Crops per optimizer step, every method (quick 20, full 120).")
    add("--eval-batch-size", type=int, help="Images per evaluation batch.")
    add("--eval-every", type=int, help="Epochs between the evaluations of the accuracy curves (quick 1, full 2).")
    add("--throughput-rounds", type=int, help="Interleaved timing rounds per method (quick 2, full 3).")
    add("--throughput-steps", type=int, help="Timed steps per round (quick 5, full 8).")
    add(
        "--controls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Also train plain and ReLabel on exactly FKD's batches (quick: yes, full: no).",
    )
    add("--ablation", nargs="*", help="FKD ablation runs: 'R=4', 'kind=hard', 'k=2', 'kind=full,R=4'.")
    add("--student", help="timm student, trained from scratch (resnet10t).")
    add("--input-size", type=int, help="Student input size (64).")
    add("--teacher", help="Teacher (efficientnet-lite0), restricted to the dataset's classes.")
    add("--relabel-size", type=int, help="ReLabel map input size (default: the teacher's, 224).")
    add("--relabel-k", type=int, help="Classes stored per ReLabel map position (5).")
    add("--kind", help="FKD's soft-label kind (marginal_smoothing).")
    add("--k", type=int, help="FKD's stored classes per crop (5).")
    add("--replay", help="How stored and fresh crops become pixels, for every method: tensor or pil (tensor).")
    add("--optim", help="Optimizer, every method (adamw_torch).")
    add("--learning-rate", type=float, help="Peak learning rate (0.006), cosine schedule.")
    add("--weight-decay", type=float, help="Weight decay (0.05).")
    add("--warmup", type=float, help="Warmup, a fraction of the steps (0.05).")
    add("--workers", type=int, help="DataLoader workers, every method (1).")
    add(
        "--threads",
        type=int,
        help="torch threads of the main process during training, for the student and "
        "vanilla KD's teacher alike (default: the cores less the loader workers, >= 1).",
    )
    add(
        "--prep-threads",
        type=int,
        help="torch threads while FKD labels and ReLabel maps are made (no loader "
        "workers run then; default: every core).",
    )
    add("--seed", type=int, help="Seed of the student init, data order and crops (0).")


def resolve_settings(args: argparse.Namespace) -> Settings:
    """The mode of ``--quick`` (or full) and the dataset preset (``--preset``), with the flags given on top; checks
    that the crop counts fit."""
    mode, preset = "quick" if args.quick else "full", getattr(args, "preset", None) or "imagenette"
    if preset not in DATASET_PRESETS:
        raise ValueError(f"Unknown preset {preset!r}: use one of {', '.join(DATASET_PRESETS)}.")
    data = DATASET_PRESETS[preset]
    shared = {key: value for key, value in data.items() if key not in ("dataset", "kd_margin", *PRESETS)}
    values = {**COMMON, **PRESETS[mode], **shared, **data.get(mode, {})}
    for field in dataclasses.fields(Settings):
        given = getattr(args, field.name, None)
        if given is not None and field.name not in ("mode", "preset", "dataset"):
            values[field.name] = given
    dataset = Path(getattr(args, "dataset", None) or data["dataset"]).resolve()
    settings = Settings(mode=mode, preset=preset, dataset=str(dataset), **values)
    if settings.threads is None:  # one core per loader worker, the rest for compute: no oversubscription
        settings.threads = max(1, (os.cpu_count() or 1) - settings.workers)
    if settings.prep_threads is None:
        settings.prep_threads = os.cpu_count() or 1
    if settings.batch_crops % settings.num_crops:
        raise ValueError(
            f"batch_crops ({settings.batch_crops}) must be a multiple of num_crops ({settings.num_crops})."
        )
    if settings.num_crops > settings.stored_crops:
        raise ValueError(
            f"num_crops ({settings.num_crops}) cannot exceed the stored crops R ({settings.stored_crops})."
        )
    return settings


def parse_ablation(spec: str, settings: Settings) -> dict:
    """``'R=4'``, ``'kind=hard'``, ``'k=2'``, ``'m=2'``, ``'layout=spread'``, ``'lanes=25'`` or a combination
    (``'kind=full,R=4'``) -> one FKD run's labels and loader.

    Unset values are the main run's; a kind alone gets its default k (full: every class); m is at most R; the
    layout is FKD's grouped one unless spread is named or lanes (spread's ``spread_lanes``) are given."""
    given: dict = {}
    for part in filter(None, spec.split(",")):
        key, _, value = part.partition("=")
        if key not in ("R", "kind", "k", "m", "layout", "lanes"):
            raise ValueError(f"Unknown ablation setting {part!r}: use R=, kind=, k=, m=, layout= or lanes=.")
        given[key] = value if key in ("kind", "layout") else int(value)
    kind = given.get("kind", settings.kind)
    k = given.get("k", settings.k if kind == settings.kind else DEFAULT_K.get(kind))
    stored = given.get("R", settings.stored_crops)
    layout = given.get("layout", "spread" if "lanes" in given else "grouped")
    return {
        "R": stored,
        "m": given.get("m", min(settings.num_crops, stored)),
        "kind": kind,
        "k": k,
        "layout": layout,
        "lanes": given.get("lanes"),
    }
