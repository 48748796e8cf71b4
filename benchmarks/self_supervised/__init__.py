"""FKD's self-supervised claim, tested: stored label-free targets against the teacher run online, on imagewoof-mini
and imagenette-mini (labels read only to score the backbones).

    python -m benchmarks ssl --quick                 # smoke test of the whole protocol (E < R): ~1 minute, 2 cores
    python -m benchmarks ssl --publish               # full: both datasets, about 30 minutes on 2 cores
    python -m benchmarks ssl --dataset ../shared/data/imagewoof-mini   # one dataset only

The teacher is an encoder: ``efficientnet-lite0``'s pooled 1280-d embedding (its classifier unused). Every row
trains the same student (``resnet10t``, random init, one seed) with the same optimizer and schedule, crops per
step, epochs (an epoch is N crops, N = training photos), input size and loader workers; nothing is tuned per row:

1. fkd_distribution: ``fkd-hf generate --target_type distribution`` (the softmax of the embedding over its 1280
   dimensions at T = 0.2, top-32 marginal smoothing), R = 4 stored crops per photo, replayed m = 4 per decoded
   photo in FKDConfig's default crop layout; soft cross-entropy through a linear projection head;
2. fkd_embedding: the same with ``--target_type embedding`` (the float16 vector), cosine loss;
3. online: the cosine loss on the embedding with the teacher run on every training crop inside the training step
   (one fresh RandomResizedCrop per decoded photo, cut at the teacher's input size and, the same box and flip, at
   the student's); the same crops and optimizer steps;
4. teacher: the teacher's own embedding of the photos at its eval transform: the ceiling.

Each row's k-NN top-1 (cosine, k = 20) and linear-probe top-1 of the frozen pooled features are fitted on the
labelled training split and scored on the validation split; beside them its whole-run CPU time (training with its
loader workers, plus the generation for FKD rows; the teacher inside online's steps; the feature extraction for the
teacher), decoded photos per training crop, bytes per stored crop (label set on disk / crops) and wall time.

Sizing (full mode), so that both datasets take about half an hour on 2 cores: the student at 64 px and the teacher
at 160 px (half its cost at 224); R = 4 (fkd-hf train's m = 4 needs R >= 4) and 8 epochs, so each stored crop is
replayed E / R = 2 times and the online teacher runs on twice the crops generation labels; every training photo
(3,000) and every validation photo (1,000: a top-1 standard error of about 1.5 points); 60 crops per step (400
optimizer steps). Measured: 27.8 minutes for both datasets on a quiet 2-core AMD EPYC (benchmarks/RESULTS.md). At
these costs FKD's whole run cannot reach 1/3 of online's: generation alone is R/E = 1/2 of online's teacher passes,
and the student's steps are the same in both.

Outputs go to ``--output-dir``: ssl.json (rewritten after every row, so an interrupted run keeps what it measured),
report.md, and each trained student as ``fkd-hf train`` saves it (backbone + projection head,
``fkd_hf.models.projection.save_backbone_and_head``) in <dataset>/students/<row>/. ``--publish`` also writes
benchmarks/results/ssl.json and the ``ssl`` block of benchmarks/RESULTS.md (ssl_quick.json and ``ssl:quick`` in
quick mode). ssl.json: ``{"datasets": {name: {"methods": {row: {"knn_top1", "probe_top1", "cpu_s", ...}}}},
"methods": <imagewoof-mini's>, "settings", "machine" (with the load average at the start and the end), "goals"}``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from .. import _report
from .report import render_report
from .settings import add_protocol_arguments, resolve_settings

__all__ = ["make_parser", "main"]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks ssl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="Small subsets and tiny sizes: a smoke test of the whole protocol.")
    add("--dataset", default=None, help="Run this folder only (train/<class>/ and val/<class>/).")
    add("--work-dir", default=None, help="Where labels and runs go (default: a temporary folder).")
    add("--output-dir", default="outputs/bench_ssl", help="ssl.json, report.md and the students.")
    add("--publish", action="store_true", help="Also write benchmarks/results/ssl.json and RESULTS.md's block.")
    add_protocol_arguments(parser)
    return parser


def finish(results: dict, output: Path, publish: bool) -> str:
    """report.md in ``output`` (with ``publish``, the results and this mode's block beside RESULTS.md)."""
    report = render_report(results)
    (output / "report.md").write_text(report)
    if publish:
        quick = results["mode"] == "quick"
        _report.publish("ssl:quick" if quick else "ssl", report)
        _report.write_json(_report.RESULTS_DIR / ("ssl_quick.json" if quick else "ssl.json"), results)
    print(report)
    return report


def main(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    settings = resolve_settings(args)
    for folder in settings.datasets:
        if not (Path(folder) / "train").is_dir():
            raise SystemExit(
                f"python -m benchmarks ssl: {folder} has no train/ folder: pass --dataset DIR, a folder with "
                "train/<class>/ and val/<class>/ (such as ../shared/data/imagewoof-mini)."
            )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets
    import torch

    from .protocol import new_results, run_dataset, save_results  # torch, transformers: not needed for --help

    datasets.disable_progress_bars()
    output, threads = Path(args.output_dir), torch.get_num_threads()
    results = new_results(settings)
    with tempfile.TemporaryDirectory(prefix="fkd_ssl_") as temporary:
        work = Path(args.work_dir or temporary)
        torch.set_num_threads(settings.threads)
        try:
            for folder in settings.datasets:
                work_dir = work / Path(folder).name
                work_dir.mkdir(parents=True, exist_ok=True)
                run_dataset(settings, folder, work_dir, output, results, lambda: save_results(results, output, started))
        finally:
            torch.set_num_threads(threads)
    results["finished"] = True
    save_results(results, output, started)
    finish(results, output, args.publish)
    return results
