"""The pipeline benchmark's markdown section: settings and load, one table per crop size and for generation, ratios."""

from __future__ import annotations

from .settings import A100_CROPS_PER_S, TEACHER_CROPS_PER_S

COLUMNS = (
    "method",
    "crops per decode (n)",
    "ops",
    "CPU-s per 1k crops",
    "of it targets",
    "D ms",
    "C ms",
    "bound n / (D + n C), crops per CPU-s",
    "share of the bound",
    "cores for 2,470 crops/s (one A100)",
)
TARGETS = ("plain", "fkd", "fkd_pil", "relabel", "relabel_pil")  # the methods the project's targets compare


def _cell(value, spec: str) -> str:
    """``value`` formatted with ``spec``; "-" where it was not measured."""
    return "-" if value is None else format(value, spec)


def table(rows: dict) -> list[str]:
    """A markdown table of :func:`~benchmarks.pipeline.timing.derive`'s rows."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name, r in rows.items():
        cells = [
            name,
            str(r["crops_per_decode"]),
            r["ops"] or "-",
            _cell(r["cpu_s_per_1k_crops"], ".3f"),
            _cell(r["targets_cpu_s_per_1k_crops"], ".3f"),
            _cell(r["decode_ms"], ".3f"),
            _cell(r["crop_ms"], ".3f"),
            _cell(r["bound_crops_per_cpu_s"], ".0f"),
            _cell(r["share_of_bound"], ".0%"),
            _cell(r["a100_cores"], ".2f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def ratios(rows: dict, size: int) -> list[str]:
    """The same run's ratios at the headline size: every method's CPU-seconds per crop against fkd's, and the
    project's targets where their methods ran."""
    c = {name: r["cpu_s_per_1k_crops"] for name, r in rows.items()}
    if "fkd" not in c:
        return []
    lines = [
        f"Same run, CPU-s per crop relative to fkd at {size} px: "
        + ", ".join(f"{name} {value / c['fkd']:.2f}x" for name, value in c.items() if name != "fkd")
        + "."
    ]
    if set(TARGETS) <= set(c):
        share = {name: r["share_of_bound"] for name, r in rows.items()}
        lines.append(
            f"Targets at {size} px: plain / fkd {c['plain'] / c['fkd']:.2f}x (>= 3x; plain / fkd_pil "
            f"{c['plain'] / c['fkd_pil']:.2f}x); relabel / fkd {c['relabel'] / c['fkd']:.2f}x and relabel_pil "
            f"/ fkd_pil {c['relabel_pil'] / c['fkd_pil']:.2f}x (>= 1.2x); fkd at {share['fkd']:.0%} and "
            f"fkd_pil at {share['fkd_pil']:.0%} of their bounds (>= 85%)."
        )
    return lines


def report(results: dict, args) -> str:
    """The markdown section of ``results`` (see :func:`~benchmarks.pipeline.main`)."""
    decode, load, machine = results["decode_ms_by_decoder"], results["load_average"], results["machine"]
    headline = results["methods"][str(results["crop_size"])]
    settings = (
        f"{results['photos_described']}; one thread (FFCV: one worker), process CPU time, best of "
        f"{args.rounds} rounds of >= {args.crops} crops; load average {load['start']:.1f} at the start, "
        f"{load['end']:.1f} at the end ({machine['cores']} cores, {machine['cpu']}, torch "
        f"{machine['versions']['torch']}); m = {args.num_crops} of R = {args.stored_crops} stored crops, "
        f"{args.classes} classes; device ops on {args.device}."
    )
    lines = [settings, ""]
    tables = {f"{size} px crops": rows for size, rows in results["methods"].items()}
    if results["generation"]:
        tables["generation's CPU side per stored crop, 224 px bicubic"] = results["generation"]
    for title, rows in tables.items():
        lines += [f"**{title}**", "", *table(rows), ""]
    lines += [
        f"Cores to feed one A100 teacher, {name} at {rate} crops/s (assumed): "
        + ", ".join(
            f"{method} {rate * r['cpu_s_per_1k_crops'] / 1e3:.2f}" for method, r in results["generation"].items()
        )
        + "."
        for name, rate in TEACHER_CROPS_PER_S.items()
        if results["generation"]
    ]
    lines += [
        "",
        f"PIL half-size decoding (Image.draft): {decode['pil_draft_half']:.3f} ms per photo (full: "
        f"{decode['pil']:.3f}), allowed where every crop is >= 2x the output both ways: "
        + "; ".join(
            f"{size} px: {d['fkd']:.1%} of photos for FKD (all R crops), {d['single']:.1%} for one crop"
            for size, d in results["draft"].items()
        )
        + ".",
    ]
    if "fkd" in headline:
        targets = headline["fkd"]["targets_cpu_s_per_1k_crops"]
        lines.append(
            f"FKD's label reconstruction at {args.classes} classes on the CPU: {targets:.4f} ms per crop, "
            f"{targets * A100_CROPS_PER_S / 1e3:.2%} of an A100's time per crop."
        )
    lines += ratios(headline, results["crop_size"])
    return "\n".join(lines + [f"Note: {note}" for note in results["notes"]]) + "\n"
