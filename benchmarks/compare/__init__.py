"""FKD against plain training, vanilla KD and ReLabel, on one machine in one run: accuracy, throughput, decodes,
label storage.

    python -m benchmarks compare --quick                  # about 5 minutes on 2 CPU cores: the whole protocol, small
    python -m benchmarks compare --publish                # full: all of imagenette-mini, about 80 minutes on 2 cores
    python -m benchmarks compare --preset imagewoof --publish   # full on imagewoof-mini (ten dog breeds), 96 px
    python -m benchmarks compare --labels DIR             # reuse an FKD label set of these images (any kind)
    python -m benchmarks compare --render outputs/bench_compare/results.json --publish   # re-render a (partial) run

Every method shares the student (architecture, initial weights), the optimizer and schedule, the crops per
optimizer step, the seed and data order, the loader workers, the crop pipeline and the evaluation; each is built by
``fkd_hf.training.build_trainer`` and differs only in what each decoded image yields and in the targets:

1. plain: one RandomResizedCrop + flip per decoded image, hard labels, cross-entropy;
2. vanilla_kd: the teacher's softmax on every crop, one crop per decoded image: FKD kind=full at m = 1 on R >=
   epochs stored crops (each used once; the same targets as an online teacher, up to float16), or the teacher
   online in the training step when no such labels exist (and always for the steady-state timing);
3. relabel: fresh crops, targets by RoIAlign on a per-image label map from the teacher (ReLabel);
4. fkd, fkd_spread, fkd_m1, fkd_tail: ``fkd-hf generate`` labels through ``FKDTrainer``: the paper's loader
   (``num_crops`` stored crops of a decoded image in one batch), the spread layout, one crop per decode, and the
   paper's loader with the single-crop tail;
5. fkd_default: FKD as ``fkd-hf train`` ships it: every FKD setting (layout, m, loss) at FKDConfig's defaults, read
   when the run starts; the protocol's values (student, optimizer, schedule, crops per step, workers) as for all.
   When these settings equal another FKD row's, that row's run is reported for both (``same_run_as``).

An epoch is N crops (N = training images) for every method, so E epochs are the same optimizer steps for all;
FKD's E epochs are E / num_crops passes over the images. ``--controls`` adds plain and ReLabel on exactly FKD's
batches (same images, stored crops and order), which isolate the label source. The ablation trains FKD again on
label sets cut from one ``--kind full`` generation (R, kind, k, m) or with another layout (``layout=spread``,
``lanes=N``). ``--preset`` picks the data and what suits it (imagenette: 64 px, 16 epochs; imagewoof: 96 px, 8
epochs; see ``settings.DATASET_PRESETS``); ``--dataset`` points at another copy of the same layout. Each method's
whole-run CPU time (``cost.py``: the teacher included) is reported beside its accuracy.

Outputs go to ``--output-dir`` (report.md, results.json, summary.json, compare.png, and each method's final student
in students/<method>/, a safetensors folder that ``timm.create_model("local-dir:DIR", pretrained=True)`` loads with
its eval transform; results.json is rewritten after every run, so an interrupted run keeps what it measured);
``--publish`` also writes the report and the plot into benchmarks/RESULTS.md and summary.json as
benchmarks/results/compare_<mode>.json (compare_<mode>_<preset>.json for a preset other than imagenette).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from .. import _report
from .plot import plot
from .report import render_report, summary_json
from .settings import (
    DATASET_PRESETS,
    MAIN_METHODS,
    SAME_CROP_METHODS,
    Settings,
    add_protocol_arguments,
    resolve_settings,
)

__all__ = ["make_parser", "main", "render"]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="The small preset (a smoke test of the whole protocol).")
    add(
        "--preset",
        choices=list(DATASET_PRESETS),
        default="imagenette",
        help="The data and what suits it: imagenette (imagenette-mini, 64 px) or imagewoof (imagewoof-mini, 96 px).",
    )
    add("--dataset", default=None, help="Folder with train/<class>/ and val/<class>/ (default: the preset's).")
    add("--labels", default=None, help="Reuse this FKD label set (any kind; matched by image_key).")
    add("--relabel-maps", default=None, help="Reuse ReLabel maps written by an earlier run.")
    add("--work-dir", default=None, help="Where labels, maps and runs go (default: a temporary folder).")
    add("--output-dir", default="outputs/bench_compare", help="report.md, results.json, compare.png.")
    add("--publish", action="store_true", help="Also update benchmarks/RESULTS.md and the PNG there.")
    add("--methods", nargs="+", default=None, help=f"Subset of {MAIN_METHODS + SAME_CROP_METHODS}.")
    add("--no-ablation", action="store_true", help="Skip the FKD ablation runs.")
    add(
        "--render",
        default=None,
        metavar="RESULTS_JSON",
        help="Only rewrite report.md and the plot (and with --publish, RESULTS.md) from a results.json, finished "
        "or not.",
    )
    add_protocol_arguments(parser)
    return parser


def finish(results: dict, output: Path, publish: bool) -> str:
    """report.md and compare.png in ``output`` (and with ``publish``, this mode's block of RESULTS.md)."""
    report = render_report(results)
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.md").write_text(report)
    png = plot(results, output / "compare.png")
    summary = summary_json(results)
    _report.write_json(output / "summary.json", summary)
    if publish:
        settings = Settings.from_results(results)
        name, block = settings.publish_name, f"compare:{settings.mode}"
        block += "" if settings.preset == "imagenette" else f":{settings.preset}"
        _report.publish(
            block,
            report,
            png,
            f"{name}.png",
            f"accuracy against wall time, {settings.mode} run on {Path(settings.dataset).name}",
        )
        _report.write_json(_report.RESULTS_MD.parent / "results" / f"{name}.json", summary)  # beside RESULTS.md
    print(report)
    return report


def render(path: Path, output: Path, publish: bool) -> dict:
    """report.md and compare.png (and RESULTS.md with ``publish``) from a saved results.json."""
    results = json.loads(Path(path).read_text())
    finish(results, output, publish)
    return results


def main(args: argparse.Namespace) -> dict:
    if args.render:
        return render(Path(args.render), Path(args.output_dir), args.publish)
    started = time.perf_counter()
    settings = resolve_settings(args)
    if not (Path(settings.dataset) / "train").is_dir():
        raise SystemExit(
            f"python -m benchmarks compare: {settings.dataset} has no train/ folder: pass --dataset DIR, "
            "a folder with train/<class>/ and val/<class>/ (such as ../shared/data/imagewoof-mini)."
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets
    import torch

    from .protocol import run_protocol  # torch, transformers: not needed for --help and --render

    datasets.disable_progress_bars()
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="fkd_compare_") as temporary:
        work = Path(args.work_dir or temporary)
        work.mkdir(parents=True, exist_ok=True)
        try:
            results = run_protocol(args, settings, work, Path(args.output_dir), started)
        finally:
            torch.set_num_threads(threads)
    finish(results, Path(args.output_dir), args.publish)
    return results
