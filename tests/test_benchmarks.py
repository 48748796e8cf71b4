"""The four-method comparison (benchmarks/compare/): ReLabel maps and targets, vanilla KD targets, the baselines'
crops and losses through build_trainer, label-set cuts, and the whole harness on tiny photos with a tiny teacher."""

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _fkd_data import TINY_CLASSES, make_label_set, make_splits
from conftest import IMAGENETTE, REPO_ROOT, assert_same_logits
from PIL import Image

if str(REPO_ROOT) not in sys.path:  # benchmarks/ is not an installed package: import it from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import _report, demo_time  # noqa: E402
from benchmarks.__main__ import BENCHMARKS  # noqa: E402
from benchmarks.__main__ import main as bench_main
from benchmarks.compare import labels as compare_labels  # noqa: E402
from benchmarks.compare import make_parser as compare_parser  # noqa: E402
from benchmarks.compare import rows as compare_rows  # noqa: E402
from benchmarks.compare import runs as compare_runs  # noqa: E402
from benchmarks.compare import settings as compare_settings  # noqa: E402
from benchmarks.compare.settings import MAIN_METHODS, SAME_CROP_METHODS  # noqa: E402
from benchmarks.methods import CropDataset, PlainTrainer, VanillaKDTrainer, collate_batch, crop_set_factory  # noqa: E402
from benchmarks.relabel import dense_logit_map, generate_label_maps, join_label_maps, load_label_maps, relabel_targets  # noqa: E402
from fkd_hf import FKDConfig, load_label_set, load_teacher  # noqa: E402
from fkd_hf.labels import join_labels  # noqa: E402
from fkd_hf.labels.crops import resample_filter  # noqa: E402
from fkd_hf.labels.images import load_images  # noqa: E402
from fkd_hf.labels.kinds import reconstruct  # noqa: E402
from fkd_hf.models import create_student  # noqa: E402
from fkd_hf.models.pixels import normalize, to_uint8_batch  # noqa: E402
from fkd_hf.training import FKDCropDataset, build_trainer  # noqa: E402

IMAGEWOOF = IMAGENETTE.parent / "imagewoof-mini"
R = 4  # stored crops of the tiny label set (fkd-hf train's default m = 4 needs R >= 4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, teacher_dir):
    """Photos with train/ and val/, and a ``--kind full`` label set of the train split (R = 4, k = C = 3)."""
    root = tmp_path_factory.mktemp("bench")
    images = make_splits(root / "images")
    labels = make_label_set(images, teacher_dir, root / "labels", num_crops=R, kind="full", k=None)
    return images, labels


def _dense(map_indices, map_values, num_classes):
    b, s, _, k = map_indices.shape
    dense = torch.zeros(b, num_classes, s, s)
    return dense.scatter_(1, map_indices.permute(0, 3, 1, 2), map_values.permute(0, 3, 1, 2))


def test_relabel_target_of_one_cell_is_the_softmax_of_that_cell():
    torch.manual_seed(0)
    num_classes, side, k = 6, 3, 2
    map_indices = torch.stack([torch.randperm(num_classes)[:k] for _ in range(2 * side * side)]).view(2, side, side, k)
    map_values = torch.randn(2, side, side, k) * 3
    boxes = torch.tensor(
        [[1 / 3, 2 / 3, 1 / 3, 1 / 3], [0.0, 0.0, 1 / 3, 1 / 3]]
    )  # (top, left, h, w): cells (1, 2), (0, 0)
    targets = relabel_targets(map_indices, map_values, torch.tensor([1, 0]), boxes, num_classes)
    dense = _dense(map_indices, map_values, num_classes)
    assert targets.shape == (2, num_classes)
    assert torch.allclose(targets.sum(-1), torch.ones(2))
    assert torch.allclose(targets[0], dense[1, :, 1, 2].softmax(-1), atol=1e-6)
    assert torch.allclose(targets[1], dense[0, :, 0, 0].softmax(-1), atol=1e-6)
    # other classes pool as 0 logits, as in ReLabel's get_labelmaps
    assert targets[0][dense[1, :, 1, 2] == 0].allclose(targets[0][dense[1, :, 1, 2] == 0][0])


def test_relabel_target_of_the_whole_image_is_the_teachers_own_softmax(teacher_dir):
    teacher = load_teacher(str(teacher_dir))
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logit_map = dense_logit_map(teacher.model, pixels)  # [2, C, 2, 2]: the mean is the pooled logits
        expected = teacher.outputs(pixels).softmax(-1)
    num_classes, side = logit_map.shape[1], logit_map.shape[-1]
    values, indices = logit_map.permute(0, 2, 3, 1).topk(num_classes, dim=-1)
    whole = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 2)
    targets = relabel_targets(indices, values, torch.arange(2), whole, num_classes)
    assert side == 2 and torch.allclose(targets, expected, atol=1e-5)
    restricted = dense_logit_map(teacher.model, pixels, [2, 0])
    assert torch.allclose(restricted, logit_map[:, [2, 0]], atol=1e-5)


def test_label_maps_are_written_joined_and_read_back(tiny, teacher_dir, tmp_path):
    images = load_images(f"imagefolder:{tiny[0]}", split="train")
    teacher = load_teacher(str(teacher_dir))
    info = generate_label_maps(images, teacher, [0, 1, 2], tmp_path / "maps", size=64, k=2, batch_size=5, num_workers=1)
    maps, loaded = load_label_maps(tmp_path / "maps")
    assert loaded == info and (info.map_size, info.k, info.num_rows) == (2, 2, len(images.dataset))
    assert info.bytes_per_image > 0 and info.seconds > 0
    reversed_rows = images.dataset.select(range(len(images.dataset) - 1, -1, -1))
    joined = join_label_maps(reversed_rows, "image", maps)  # matched by image_key, not by position
    row = joined[0]
    image = Image.open(reversed_rows[0]["image"]["path"]).convert("RGB")
    image = image.resize((64, 64), resample_filter(teacher.interpolation))
    with torch.no_grad():
        logit_map = dense_logit_map(
            teacher.model, normalize(to_uint8_batch([image]), teacher.mean, teacher.std), [0, 1, 2]
        )
    values, indices = logit_map.permute(0, 2, 3, 1).topk(2, dim=-1)
    assert np.array_equal(np.asarray(row["map_indices"]), indices.flatten().numpy())
    assert np.allclose(np.asarray(row["map_values"], np.float32), values.flatten().numpy(), atol=1e-2)


def test_vanilla_kd_targets_reproduce_fkds_stored_labels_on_its_crops(tiny, teacher_dir, tmp_path):
    """The KD baseline (built by build_trainer, its teacher run by TeacherRunner) cuts the teacher's input as
    `fkd-hf generate` does: on FKD's crops, the online teacher gives the stored (kind full) labels, up to float16
    storage."""
    images, labels_dir = tiny
    labels = load_label_set(labels_dir)
    source = load_images(f"imagefolder:{images}", split="train")
    teacher = load_teacher(str(teacher_dir))
    config = FKDConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        num_crops=R,
        input_size=24,
        student="test_resnet",
        dataloader_num_workers=0,
    )
    setup = build_trainer(
        config,
        labels=labels,
        images=source,
        train_set_factory=crop_set_factory(True, teacher),
        trainer_class=VanillaKDTrainer,
        teacher=teacher,
        class_indices=[0, 1, 2],
    )
    rows = join_labels(source, labels)
    fkd = FKDCropDataset(rows, labels.metadata, R, (24, 24), seed=config.seed)  # the same crops, in the same order
    batch = collate_batch([setup.train_set[i] for i in (0, 5)])
    fkd_batch = [fkd[i] for i in (0, 5)]
    assert torch.equal(batch["pixel_values"], torch.cat([s["pixel_values"] for s in fkd_batch]).permute(0, 3, 1, 2))
    targets = setup.trainer.targets(batch)
    stored = reconstruct(
        torch.cat([s["topk_indices"] for s in fkd_batch]), torch.cat([s["topk_values"] for s in fkd_batch]), "full", 3
    )
    assert torch.allclose(targets, stored, atol=2e-3)
    pixels = normalize(batch["teacher_pixels"], teacher.mean, teacher.std)
    with torch.no_grad():
        assert torch.allclose(targets, teacher.outputs(pixels).softmax(-1), atol=1e-6)  # all 3 classes, in order
    assert setup.trainer.teacher_seconds > 0
    assert batch["labels"].tolist() == [rows[0]["label"]] * R + [rows[5]["label"]] * R


def test_fresh_crops_depend_on_seed_row_and_pass_only(tiny):
    source = load_images(f"imagefolder:{tiny[0]}", split="train")
    dataset = CropDataset(source.dataset, 1, (16, 16), seed=3)
    first = dataset.__getitems__([4, 1])
    assert torch.equal(first[0]["boxes"], dataset[4]["boxes"])
    dataset.set_pass(1)
    assert not torch.equal(first[0]["boxes"], dataset[4]["boxes"])
    top, left, height, width = first[0]["boxes"][0].tolist()
    assert 0 <= top and 0 <= left and top + height <= 1 + 1e-6 and left + width <= 1 + 1e-6


def test_plain_loss_is_the_cross_entropy_and_eval_batches_use_the_models_loss(tiny, tmp_path):
    """A baseline built by build_trainer: only its training set and targets differ from FKD's."""
    images, labels_dir = tiny
    source = load_images(f"imagefolder:{images}", split="train")
    config = FKDConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        num_crops=1,
        input_size=16,
        student="test_resnet",
        dataloader_num_workers=0,
    )
    setup = build_trainer(
        config,
        labels=load_label_set(labels_dir),
        images=source,
        train_set_factory=crop_set_factory(),
        trainer_class=PlainTrainer,
    )
    trainer, model = setup.trainer, setup.trainer.model
    assert isinstance(setup.train_set, CropDataset) and setup.train_set.size == (16, 16)
    assert model.config.num_labels == len(TINY_CLASSES)
    batch = collate_batch([trainer.train_dataset[i] for i in range(4)])
    pixels = normalize(batch["pixel_values"], setup.resolved.mean, setup.resolved.std)
    with torch.no_grad():
        expected = F.cross_entropy(model(pixel_values=pixels).logits, batch["labels"])
        assert torch.allclose(trainer.compute_loss(model, batch), expected, atol=1e-6)
        eval_batch = {"pixel_values": batch["pixel_values"], "labels": batch["labels"]}
        assert torch.allclose(trainer.compute_loss(model, eval_batch), expected, atol=1e-6)
    before = [p.detach().clone() for p in model.parameters()]
    config.max_steps = 2
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_baseline_needs_the_label_sets_metadata(tiny, tmp_path):
    source = load_images(f"imagefolder:{tiny[0]}", split="train")
    config = FKDConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", num_crops=1)
    with pytest.raises(ValueError, match="metadata"):
        PlainTrainer(create_student("test_resnet", TINY_CLASSES), config, CropDataset(source.dataset, 1, (16, 16)))


def test_a_kind_cut_of_a_full_label_set_equals_direct_generation(tiny, teacher_dir, tmp_path):
    images, labels_dir = tiny
    source = load_images(f"imagefolder:{images}", split="train")
    keys = compare_labels.image_keys(source)
    cut = compare_labels.derive_label_set(labels_dir, tmp_path / "cut", source, keys, "marginal_smoothing", 2, R)
    direct = make_label_set(images, teacher_dir, tmp_path / "direct", num_crops=R, kind="marginal_smoothing", k=2)
    a, b = load_label_set(cut), load_label_set(direct)
    assert (a.metadata.kind, a.metadata.k, a.metadata.stored_crops) == ("marginal_smoothing", 2, R)
    for column in ("image_key", "crops", "flips", "topk_indices", "topk_values"):
        assert a.dataset[column] == b.dataset[column], column
    fewer = load_label_set(compare_labels.derive_label_set(labels_dir, tmp_path / "r1", source, keys, "hard", 1, 1))
    assert fewer.dataset[0]["crops"] == a.dataset[0]["crops"][:1] and fewer.metadata.stored_crops == 1


def test_ablation_specs_default_to_the_main_run():
    settings = compare_settings.resolve_settings(compare_parser().parse_args(["--quick"]))
    grouped = {"layout": "grouped", "lanes": None}
    assert compare_settings.parse_ablation("R=2", settings) == {
        "R": 2,
        "m": 2,
        "kind": "marginal_smoothing",
        "k": 5,
        **grouped,
    }
    assert compare_settings.parse_ablation("kind=hard", settings) == {"R": 8, "m": 4, "kind": "hard", "k": 1, **grouped}
    lanes = compare_settings.parse_ablation("lanes=25", settings)
    assert (lanes["layout"], lanes["lanes"], lanes["m"]) == ("spread", 25, 4)
    assert compare_settings.parse_ablation("kind=full,R=4", settings)["k"] is None  # every class
    with pytest.raises(ValueError, match="Unknown ablation"):
        compare_settings.parse_ablation("T=2", settings)


def test_compare_runs_end_to_end_and_publishes(tiny, teacher_dir, tmp_path, monkeypatch, capsys):
    images, labels_dir = tiny
    results_md = tmp_path / "RESULTS.md"
    results_md.write_text("# Results\n\n## Generation\n\n<!-- compare:full:begin -->\nold\n<!-- compare:full:end -->\n")
    monkeypatch.setattr(_report, "RESULTS_MD", results_md)
    argv = [
        "compare",
        "--dataset",
        str(images),
        "--teacher",
        str(teacher_dir),
        "--labels",
        str(labels_dir),
        "--student",
        "test_resnet",
        "--input-size",
        "24",
        "--epochs",
        "2",
        "--stored-crops",
        "4",
        "--num-crops",
        "2",
        "--batch-crops",
        "4",
        "--eval-batch-size",
        "6",
        "--relabel-size",
        "64",
        "--k",
        "2",
        "--workers",
        "0",
        "--threads",
        "1",
        "--ablation",
        "kind=hard",
        "R=9",
        "lanes=1",
        "--controls",
        "--eval-every",
        "1",
        "--output-dir",
        str(tmp_path / "out"),
        "--publish",
    ]
    threads = torch.get_num_threads()
    assert bench_main(argv) == 0
    assert torch.get_num_threads() == threads  # restored
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    runs = results["runs"]
    assert set(runs) == set(MAIN_METHODS + SAME_CROP_METHODS)
    assert len({run["initial_weights"] for run in runs.values()}) == 1  # one student init for every method
    assert {run["steps"] for run in runs.values()} == {6}  # 2 epochs x 12 images / 4 crops per step
    decoded = {name: run["decoded_images"] for name, run in runs.items()}
    # m = 2 decodes a photo per 2 crops; m = 1 and the tail (2 epochs = its one pass, single-crop) one per crop;
    # FKD as shipped replays fkd-hf train's default m = 4
    assert decoded == dict(
        plain=24,
        vanilla_kd=24,
        relabel=24,
        fkd=12,
        fkd_spread=12,
        fkd_m1=24,
        fkd_tail=24,
        fkd_default=6,
        plain_fkd_crops=12,
        relabel_fkd_crops=12,
    )
    layouts = {name: runs[name]["fkd_settings"]["crop_layout"] for name in ("fkd", "fkd_spread", "fkd_m1", "fkd_tail")}
    assert layouts == dict(fkd="grouped", fkd_spread="spread", fkd_m1="grouped", fkd_tail="grouped")
    assert "same_run_as" not in runs["fkd_default"]  # m = 4 here, 2 for the variants: a run of its own
    assert all(len(run["curve"]) == 2 and 0 <= run["top1"] <= 1 for run in runs.values())
    assert all(
        len(run["correct"]) == 6 and run["correct"].count("1") == round(6 * run["top1"]) for run in runs.values()
    )
    # R = epochs of kind full: vanilla KD trains as FKD at m = 1 on those labels; the labels were reused, so its
    # teacher time is unknown; its steady crops/s come from the online teacher
    assert results["vanilla_kd"] == "stored" and runs["vanilla_kd"]["teacher_seconds"] is None
    assert results["throughput"]["best"]["vanilla_kd"] > 0 and "fkd_tail" not in results["throughput"]["best"]
    summary = json.loads((tmp_path / "results" / "compare_full.json").read_text())
    assert set(summary["methods"]) == set(runs) and summary["methods"]["fkd"]["decodes_per_crop"] == 0.5
    spread, shipped = summary["methods"]["fkd_spread"], summary["methods"]["fkd_default"]
    assert spread["fkd_spread_minus_this"] is None and spread["top1"] == runs["fkd_spread"]["top1"]
    assert shipped["fkd_default_minus_this"] is None and summary["reference"] == "fkd_default"
    plain = summary["methods"]["plain"]
    assert plain["top1_se"] == pytest.approx((plain["top1"] * (1 - plain["top1"]) / 6) ** 0.5)
    assert plain["crops_per_s"] > 0 and plain["fkd_spread_minus_this"]["paired_se"] >= 0
    assert plain["fkd_default_minus_this"]["paired_se"] >= 0
    # labels reused: FKD's and vanilla KD's generation cost is unknown, plain's is its training alone
    assert shipped["cpu_seconds"] is None and plain["cpu_seconds"] == runs["plain"]["cpu_seconds"] > 0
    hard, too_many, spread = results["ablation"]
    assert (hard["kind"], hard["k"], hard["R"]) == ("hard", 1, 4) and "skipped" in too_many
    assert (spread["layout"], spread["lanes"], spread["decoded_images"]) == ("spread", 1, 12)
    assert results["label_prep"].get("fkd_seconds") is None and results["label_prep"]["relabel_seconds"] > 0
    text = results_md.read_text()
    assert "old" not in text and "| FKD | 2 |" in text and "## Generation" in text and "(compare_full.png)" in text
    assert (tmp_path / "compare_full.png").stat().st_size > 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "FKD >= 3x the crops/s of vanilla KD" in report and "FKD as shipped top-1 >= FKD m = 1" in report
    assert "regime check" not in report  # imagenette's preset sets no KD margin


def test_dataset_presets_resolve_with_flags_on_top():
    woof = compare_settings.resolve_settings(compare_parser().parse_args(["--preset", "imagewoof"]))
    assert Path(woof.dataset).name == "imagewoof-mini" and (woof.mode, woof.preset) == ("full", "imagewoof")
    assert (woof.input_size, woof.epochs, woof.stored_crops, woof.student) == (96, 8, 8, "resnet10t")
    assert woof.publish_name == "compare_full_imagewoof"
    quick = compare_settings.resolve_settings(
        compare_parser().parse_args(["--preset", "imagewoof", "--quick", "--input-size", "64", "--dataset", "/x"])
    )
    assert (quick.input_size, quick.train_per_class, quick.epochs, quick.dataset) == (64, 20, 8, "/x")
    assert quick.publish_name == "compare_quick_imagewoof"
    nette = compare_settings.resolve_settings(compare_parser().parse_args([]))
    assert Path(nette.dataset).name == "imagenette-mini" and (nette.input_size, nette.epochs) == (64, 16)
    assert nette.publish_name == "compare_full"  # the published imagenette files keep their names
    assert compare_settings.Settings.from_results({"settings": {"mode": "full"}}).preset == "imagenette"  # older runs
    with pytest.raises(SystemExit):
        compare_parser().parse_args(["--preset", "cifar"])


def test_compare_without_the_data_says_which_flag_to_pass(tmp_path):
    with pytest.raises(SystemExit, match="has no train/ folder: pass --dataset DIR"):
        bench_main(["compare", "--preset", "imagewoof", "--dataset", str(tmp_path)])


def test_fkd_default_is_fkd_hf_train_as_shipped(monkeypatch, tmp_path):
    """FKD as shipped has the FKD settings `fkd-hf train` gets without flags, read from FKDConfig when asked."""
    from fkd_hf.cli.arguments import parse_config

    (parsed,) = parse_config([FKDConfig], ["--output_dir", str(tmp_path)], prog="fkd-hf train", description="")
    shipped = compare_rows.shipped_fkd()
    assert shipped == compare_rows.fkd_settings(parsed) == compare_rows.row_fields("fkd_default")
    assert {"crop_layout", "num_crops", "single_crop_tail", "temperature"} <= set(shipped)
    assert not {"student", "dataset", "output_dir", "learning_rate"} & set(shipped)  # the protocol's, for all
    settings = compare_settings.resolve_settings(compare_parser().parse_args(["--num-crops", "2"]))
    assert compare_rows.crops_per_image(settings, "fkd_default") == parsed.num_crops  # not the protocol's m
    assert compare_rows.crops_per_image(settings, "fkd") == 2
    fields = FKDConfig.__dataclass_fields__
    monkeypatch.setattr(fields["crop_layout"], "default", "grouped")  # a new release ships another layout ...
    monkeypatch.setattr(fields["single_crop_tail"], "default", True)
    # ... and the row follows it
    assert compare_rows.row_fields("fkd_default")["crop_layout"] == "grouped"
    assert compare_rows.decodes_per_crop(settings, "fkd_default") > 1 / parsed.num_crops  # the tail decodes more


def test_cpu_seconds_count_child_processes_running_and_finished():
    from benchmarks.compare.cost import cpu_seconds

    burn = "import sys, time\nwhile time.process_time() < 0.5: pass\nprint('done', flush=True)\nsys.stdin.readline()"
    own, children = cpu_seconds()
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "done\n"
    running = cpu_seconds()
    child.communicate("\n")  # ends and is reaped
    finished = cpu_seconds()
    assert running[1] - children >= 0.45 and finished[1] - children >= 0.45  # 0.5 s, counted in 10 ms ticks
    assert finished[1] - running[1] < 0.45  # counted once
    assert running[0] >= own


def test_a_saved_student_loads_with_timm_with_the_same_logits(tiny, tmp_path):
    """The harness saves each final student as `_train` does; timm loads it, with its eval transform."""
    import timm

    images, labels_dir = tiny
    source = load_images(f"imagefolder:{images}", split="train")
    config = FKDConfig(
        output_dir=str(tmp_path / "run"),
        use_cpu=True,
        report_to="none",
        num_crops=2,
        input_size=24,
        student="test_resnet",
        dataloader_num_workers=0,
        max_steps=2,
    )
    setup = build_trainer(
        config,
        labels=load_label_set(labels_dir),
        images=source,
        train_set_factory=crop_set_factory(),
        trainer_class=compare_runs.timed(PlainTrainer),
    )
    setup.trainer.train()
    assert setup.trainer.train_cpu[0] > 0 and setup.trainer.train_cpu[1] >= 0
    folder = compare_runs.save_final_student(setup, tmp_path / "student")
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    pixels = torch.rand(3, 3, 24, 24)
    with torch.no_grad():
        assert_same_logits(model(pixels), setup.trainer.model.eval()(pixel_values=pixels).logits)
    data = timm.data.resolve_data_config({}, model=model)
    assert data["input_size"] == (3, 24, 24) and tuple(data["mean"]) == tuple(setup.data_config["mean"])


def _rescored(folder: Path, images: Path) -> str:
    """A saved student's per-image hits on the val split, loaded with timm, scored with its saved eval transform."""
    import timm

    from fkd_hf.training import EvalDataset, collate_crops

    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    data = timm.data.resolve_data_config({}, model=model)
    val = load_images(f"imagefolder:{images}", split="validation")
    size, crop_pct, interpolation = data["input_size"][1:], data["crop_pct"], data["interpolation"]
    batch = collate_crops(list(EvalDataset(val.dataset, size, crop_pct, interpolation)))
    with torch.no_grad():
        hits = model(normalize(batch["pixel_values"], data["mean"], data["std"])).argmax(-1) == batch["labels"]
    return "".join("1" if hit else "0" for hit in hits.tolist())


def test_compare_on_a_preset_generates_labels_counts_cpu_and_keeps_students(tiny, teacher_dir, tmp_path, monkeypatch):
    """The imagewoof preset on tiny photos, labels made in the run: whole-run CPU per method, teacher included; FKD
    as shipped reported as the spread row's run when their settings agree; every final student loads with timm."""
    images, _ = tiny
    results_md = tmp_path / "RESULTS.md"
    results_md.write_text("# Results\n")
    monkeypatch.setattr(_report, "RESULTS_MD", results_md)
    out = tmp_path / "out"
    argv = [
        "compare",
        "--preset",
        "imagewoof",
        "--dataset",
        str(images),
        "--teacher",
        str(teacher_dir),
        "--student",
        "test_resnet",
        "--input-size",
        "24",
        "--epochs",
        "4",
        "--stored-crops",
        "4",
        "--num-crops",
        "4",
        "--batch-crops",
        "4",
        "--eval-batch-size",
        "6",
        "--relabel-size",
        "64",
        "--k",
        "2",
        "--workers",
        "1",
        "--threads",
        "1",
        "--prep-threads",
        "1",
        "--throughput-rounds",
        "2",
        "--throughput-steps",
        "2",
        "--no-ablation",
        "--output-dir",
        str(out),
        "--publish",
    ]
    assert bench_main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    runs, prep = results["runs"], results["label_prep"]
    assert results["settings"]["preset"] == "imagewoof" and results["vanilla_kd"] == "stored"
    assert runs["fkd_default"]["same_run_as"] == "fkd_spread"  # m = 4, spread: fkd-hf train's defaults
    assert set(runs) == set(MAIN_METHODS) and results["throughput"]["same_run_as"] == {"fkd_default": "fkd_spread"}
    assert prep["fkd_cpu_seconds"] > 0 and prep["relabel_cpu_seconds"] > 0
    teacher = results["throughput"]["teacher_cpu_per_crop"]
    assert len(teacher) == 2 and min(teacher) > 0  # one figure per round of the online teacher
    assert all(run["cpu_seconds"] >= run["main_cpu_seconds"] > 0 for run in runs.values())
    summary = json.loads((tmp_path / "results" / "compare_full_imagewoof.json").read_text())
    methods = summary["methods"]
    training = {name: runs[name]["cpu_seconds"] for name in runs}
    assert methods["plain"]["cpu_seconds"] == pytest.approx(training["plain"])
    assert methods["relabel"]["cpu_seconds"] == pytest.approx(training["relabel"] + prep["relabel_cpu_seconds"])
    for name in ("fkd_spread", "fkd_default"):
        assert methods[name]["cpu_seconds"] == pytest.approx(training[name] + prep["fkd_cpu_seconds"])
    kd = methods["vanilla_kd"]["cpu_parts"]  # the teacher on each of its 48 crops, from the online rounds' median
    assert kd["teacher"] == pytest.approx(np.median(teacher) * runs["vanilla_kd"]["crops"]) and kd["labels"] == 0
    assert methods["vanilla_kd"]["cpu_seconds"] == pytest.approx(training["vanilla_kd"] + kd["teacher"])
    targets = {target["target"]: target["met"] for target in summary["targets"]}
    top1 = {name: method["top1"] for name, method in methods.items()}
    assert targets["vanilla KD top-1 >= plain + 3 points (the regime check)"] == (
        top1["vanilla_kd"] - top1["plain"] >= 0.03
    )
    ratio = methods["fkd_default"]["cpu_seconds"] / methods["vanilla_kd"]["cpu_seconds"]
    assert targets["FKD as shipped whole-run CPU time <= 1/3 of vanilla KD's"] == (ratio <= 1 / 3)
    text = results_md.read_text()
    assert "<!-- compare:full:imagewoof:begin -->" in text and "(compare_full_imagewoof.png)" in text
    report = (out / "report.md").read_text()
    assert "the same settings as FKD spread" in report and "whole-run CPU s" in report
    for name, run in runs.items():  # each final student, rescored by timm alone, gives the run's hits
        assert run["student"] == f"students/{name}"  # in the output folder
        assert _rescored(out / run["student"], images) == run["correct"], name


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_module_imports(name):
    """A benchmark whose imports broke (a name moved in fkd_hf) fails here, not when someone next runs it."""
    module = importlib.import_module(BENCHMARKS[name][0])
    assert callable(module.make_parser) and callable(module.main)


def test_the_entry_point_lists_every_benchmark(capsys):
    assert bench_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(
        name in out
        for name in (
            "compare",
            "generate_throughput",
            "train_throughput",
            "demo_time",
            "cpu_memory",
            "generate_soak",
            "startup",
            "ssl",
        )
    )
    assert bench_main(["nope"]) == 2


@pytest.mark.parametrize("case", ["imagenette", "imagewoof"])
def test_demo_time_runs_the_demo_from_cold_caches_and_publishes(case, teacher_dir, tmp_path, monkeypatch):
    splits = make_splits(tmp_path / "images", train_per_class=4, val_per_class=2)
    results_md = tmp_path / "RESULTS.md"
    results_md.write_text("# Results\n\n<!-- demo_time:begin -->\nOLD TABLE\n<!-- demo_time:end -->\n\n## More\n")
    monkeypatch.setattr(demo_time, "RESULTS_MD", results_md)
    tiny = (
        f"--teacher {teacher_dir} --student test_resnet --input_size 32 --stored_crops 4 --num_crops 2 "
        "--fkd_epochs 2 --batch_size 6 --num_workers 0"
    )
    argv = ["demo_time", "--cases", case, f"--{case}", str(splits), "--extra-args", tiny, "--publish"]
    assert bench_main(argv) == 0
    text = results_md.read_text()
    assert "OLD TABLE" not in text and "## More" in text
    row = next(line for line in text.splitlines() if line.startswith("| `fkd-hf demo --dataset"))
    assert f"--dataset imagefolder:{splits} " in row and f"--cases {case}`" in text
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[1].endswith(" min") and float(cells[1].split()[0]) > 0 and cells[2] == "< 20 min"
    assert cells[3].endswith("% top-1") and cells[4].endswith("%")  # FKD and plain students were both scored
    assert re.fullmatch(r"[+-]\d+\.\d points \(\d+\.\d\)", cells[5])  # their paired difference


@pytest.mark.slow
@pytest.mark.parametrize("preset, data", [("imagenette", IMAGENETTE), ("imagewoof", IMAGEWOOF)])
def test_quick_mode_on_real_photos(preset, data, tmp_path):
    """python -m benchmarks compare --quick --preset PRESET (5 to 10 minutes on 2 CPU cores)."""
    if not data.is_dir():
        pytest.skip(f"needs ../shared/data/{data.name}")
    out = tmp_path / "out"
    command = ["compare", "--quick", "--preset", preset, "--dataset", str(data), "--output-dir", str(out)]
    subprocess.run([sys.executable, "-m", "benchmarks", *command], cwd=REPO_ROOT, check=True)
    results = json.loads((out / "results.json").read_text())
    assert results["teacher_top1"] > 0.85 and set(MAIN_METHODS) <= set(results["runs"])
    assert all((out / run["student"] / "model.safetensors").is_file() for run in results["runs"].values())
