"""``fkd-hf demo`` end to end on tiny photos with a tiny teacher; the offline photos; bad input; the real runs (slow).

    python -m pytest -q tests/test_demo.py                 # fast: tiny data, under a minute
    python -m pytest -q -m slow tests/test_demo.py         # the real default run and imagenette-mini (~21 min)

Wall times are measured by `python -m benchmarks demo_time` (benchmarks/RESULTS.md), not asserted here.
"""

import errno
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _fkd_data import TINY_CLASSES, make_splits
from conftest import IMAGENETTE, REPO_ROOT, assert_same_logits, make_image_folder

import fkd_hf.demo.labels as demo_labels
import fkd_hf.demo.output as demo_output
import fkd_hf.demo.photos as demo_data
from fkd_hf.cli import main as cli_main
from fkd_hf.demo import DemoConfig, run_demo
from fkd_hf.demo.output import RESULT_FILE

TINY = [
    "--student",
    "test_resnet",
    "--input_size",
    "32",
    "--stored_crops",
    "4",
    "--num_crops",
    "2",
    "--fkd_epochs",
    "2",
    "--batch_size",
    "6",
    "--num_workers",
    "0",
]


def _tiny_config(dataset, teacher, output_dir, **overrides) -> DemoConfig:
    options = dict(
        dataset=dataset,
        teacher=str(teacher),
        output_dir=str(output_dir),
        student="test_resnet",
        input_size=32,
        stored_crops=4,
        num_crops=2,
        fkd_epochs=2,
        batch_size=6,
        num_workers=0,
    )
    options.update(overrides)
    return DemoConfig(**options)


def _leftovers(output_dir: Path) -> list[str]:
    """Hidden partial or old folders the demo left beside ``output_dir``."""
    return sorted(p.name for p in output_dir.parent.glob(f".{output_dir.name}.*"))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and lose much on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> Path:
    return make_splits(tmp_path_factory.mktemp("demo") / "images", train_per_class=4, val_per_class=2)


@pytest.fixture(scope="module")
def finished(splits, teacher_dir, tmp_path_factory):
    """One successful CLI run with --compare on a folder with train/ and val/."""
    output = tmp_path_factory.mktemp("demo_out") / "demo"
    code = cli_main(
        [
            "demo",
            "--dataset",
            f"imagefolder:{splits}",
            "--teacher",
            str(teacher_dir),
            "--output_dir",
            str(output),
            "--compare",
            *TINY,
        ]
    )
    return code, output


def test_demo_writes_push_ready_folders_summary_and_curves(finished):
    import timm
    import torch
    from huggingface_hub import ModelCard
    from transformers import AutoModelForImageClassification

    from fkd_hf.hub.push import check_label_set_folder, check_student_folder
    from fkd_hf.labels.format import load_label_set

    code, output = finished
    assert code == 0
    assert {p.name for p in output.iterdir()} >= {"labels", "student", "summary.md", "demo_config.yaml", RESULT_FILE}
    assert not (output / "work").exists() and _leftovers(output) == []
    # The label set: finished, with its dataset card, and the classes of the data (teacher restricted to them).
    labels = load_label_set(output / "labels")
    assert labels.metadata.class_names == list(TINY_CLASSES) and labels.dataset.num_rows == 12
    assert (output / "labels" / "README.md").is_file()
    check_label_set_folder(output / "labels")
    # The student: loads in timm and transformers with identical logits, and has a model card with its top-1.
    check_student_folder(output / "student")
    x = torch.randn(2, 3, 32, 32)
    in_timm = timm.create_model(f"local-dir:{output / 'student'}", pretrained=True).eval()
    in_transformers = AutoModelForImageClassification.from_pretrained(output / "student").eval()
    with torch.no_grad():
        assert_same_logits(in_timm(x), in_transformers(x).logits)
    card = ModelCard.load(output / "student" / "README.md")
    result = json.loads((output / RESULT_FILE).read_text())
    assert card.data.eval_results[0].metric_value == pytest.approx(result["runs"]["fkd"]["top1"], abs=1e-6)
    # The summary: teacher, FKD and plain rows, every stage, the push commands.
    summary = (output / "summary.md").read_text()
    for text in (
        "| teacher",
        "| FKD student `test_resnet`",
        "| plain student `test_resnet`",
        "| generate:",
        "| FKD training:",
        "| plain training:",
        "| **total**",
        "fkd-hf push-labels",
        "fkd-hf push-student",
    ):
        assert text in summary
    assert set(result["runs"]) == {"fkd", "plain"}
    assert result["runs"]["fkd"]["steps"] == result["runs"]["plain"]["steps"] > 0
    assert result["runs"]["fkd"]["crops"] == result["runs"]["plain"]["crops"]
    assert "one decoded photo per crop" in result["plain_source"]  # plain training as usual: 12 photos per step
    assert 0 <= result["teacher_top1"] <= 1 and 0 <= result["runs"]["fkd"]["agreement"] <= 1
    difference = result["runs"]["fkd"]["top1"] - result["runs"]["plain"]["top1"]
    assert result["fkd_minus_plain"] == pytest.approx(difference) and result["fkd_minus_plain_se"] >= 0
    assert f"FKD minus plain: {100 * difference:+.1f} points" in summary
    if importlib.util.find_spec("matplotlib") is None:  # the plot is optional: pip install 'fkd-hf[demo]'
        assert "no training curves" in summary and not (output / "training_curves.png").exists()
    else:
        assert (output / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paired_difference_counts_only_the_items_where_the_students_disagree():
    from fkd_hf.demo.summary import paired_difference

    a = [True] * 60 + [False] * 40  # A right on 60 of 100
    b = [True] * 50 + [False] * 10 + [True] * 5 + [False] * 35  # B right on 55: A alone right on 10, B alone on 5
    difference, error = paired_difference(a, b)
    assert difference == pytest.approx(0.05)
    assert error == pytest.approx((15 - 5**2 / 100) ** 0.5 / 100)
    assert paired_difference(a, a) == (0.0, 0.0)  # the same predictions: no difference, no uncertainty
    with pytest.raises(ValueError, match="equally long"):
        paired_difference(a, b[:-1])


def test_rerun_from_the_saved_config_replaces_the_result(finished, monkeypatch):
    _, output = finished
    before = (output / RESULT_FILE).read_text()
    # A failing rerun (disk full while labelling) leaves the earlier result exactly as it was.
    real_generate = demo_labels.generate

    def full_disk(*args, **kwargs):
        real_generate(*args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(demo_labels, "generate", full_disk)
    assert cli_main(["demo", "--config", str(output / "demo_config.yaml")]) == 1
    assert (output / RESULT_FILE).read_text() == before and _leftovers(output) == []
    monkeypatch.undo()
    assert cli_main(["demo", "--config", str(output / "demo_config.yaml"), "--seed", "1", "--compare", "false"]) == 0
    assert json.loads((output / RESULT_FILE).read_text()) != json.loads(before)
    assert _leftovers(output) == []


def test_a_folder_without_a_validation_split_holds_out_every_tenth_image(teacher_dir, tmp_path):
    images = make_image_folder(tmp_path / "flat", per_class=7)  # class folders directly, 21 images
    result = run_demo(_tiny_config(f"imagefolder:{images}", teacher_dir, tmp_path / "out"))
    assert result.metrics["mode"] == "holdout" and "held out" in result.summary
    assert "plain" not in result.metrics["runs"]  # no --compare
    from fkd_hf.labels.format import load_label_set

    assert load_label_set(tmp_path / "out" / "labels").dataset.num_rows == 21  # the label set covers every image
    assert result.metrics["runs"]["fkd"]["crops"] == 2 * 19  # 2 FKD epochs (1 pass x 2 crops) of 19 images


def test_the_plain_student_decodes_a_photo_per_crop_when_a_batch_of_photos_fits():
    from fkd_hf.demo.config import DemoConfig
    from fkd_hf.demo.run import plain_config

    config = DemoConfig(dataset="imagefolder:x", batch_size=64, num_crops=4).resolved()
    plain = plain_config(config, 3000)
    assert (plain.num_crops, plain.batch_size, plain.fkd_epochs) == (1, 256, config.fkd_epochs)  # same crops per step
    assert plain_config(config, 255) == config  # fewer photos than a batch has crops: FKD's m crops of each


def test_sample_photo_mode_scores_agreement_on_held_out_crops(image_folder, teacher_dir, tmp_path, monkeypatch):
    """The default (photo) path, with the tiny photos and teacher standing in for foolbox's photos and lite0."""
    photos = demo_data.DemoPhotos(
        root=image_folder,
        spec=f"imagefolder:{image_folder}",
        class_map="auto",
        num_images=18,
        num_classes=3,
        source="test photos (MIT)",
    )
    monkeypatch.setattr(demo_data, "demo_photos", lambda root=None: photos)
    config = _tiny_config(None, teacher_dir, tmp_path / "out", heldout_crops=3, compare=True)
    result = run_demo(config)
    assert result.metrics["mode"] == "photos"
    assert "agreement with the teacher" in result.summary and "It is not accuracy" in result.summary
    assert result.metrics["runs"]["fkd"]["agreement"] is None  # the score itself is the agreement
    assert 0 <= result.metrics["runs"]["plain"]["top1"] <= 1
    card = (tmp_path / "out" / "student" / "README.md").read_text()
    assert "model-index" not in card  # agreement is not accuracy: the card claims no accuracy
    # The card states the agreement the demo measured, as agreement, instead of "Not evaluated yet".
    agreement = f"{100 * result.metrics['runs']['fkd']['top1']:.1f} %"
    evaluation = card.split("## Evaluation", 1)[1].split("\n## ", 1)[0]
    assert "Not evaluated" not in evaluation and "agreement with the teacher" in evaluation
    assert agreement in evaluation and "not accuracy" in evaluation
    assert f"{result.metrics['eval_items']} held-out crops" in evaluation


def test_offline_photos_come_from_the_installed_registry_package(tmp_path):
    if importlib.util.find_spec(demo_data.PHOTOS_PACKAGE) is None:
        pytest.skip("foolbox (the PyPI package with the demo photos) is not installed: pip install 'fkd-hf[demo]'")
    photos = demo_data.demo_photos(tmp_path / "photos")
    assert (photos.num_images, photos.num_classes) == (20, 19)
    class_map = json.loads(Path(photos.class_map).read_text())
    sources = {path.name: (path, label) for path, label in demo_data.find_sample_photos()}
    copied = sorted((photos.root / "train").glob("*/*.jpg"))
    assert len(copied) == 20
    for path in copied:
        source, label = sources[path.name]
        assert class_map[path.parent.name] == label  # the folder's class is the photo's ImageNet label
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    mtime = photos.root.stat().st_mtime_ns
    assert demo_data.demo_photos(tmp_path / "photos").root.stat().st_mtime_ns == mtime  # reused, not rebuilt
    from fkd_hf.labels.images import load_images

    source = load_images(photos.spec)
    assert source.num_rows == 20 and sorted(source.label_names) == sorted(class_map)


def test_missing_photo_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(demo_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"pip install 'fkd-hf\[demo\]'"):
        demo_data.find_sample_photos()


def _bad(capsys, tmp_path, *argv, status=2) -> str:
    output = tmp_path / "bad"
    code = cli_main(["demo", "--output_dir", str(output), *argv])
    err = capsys.readouterr().err  # progress bars, then the error
    assert code == status, err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("fkd-hf demo: error: ") and "Traceback" not in err
    err = errors[0]
    assert not output.exists() and _leftovers(output) == []
    return err


@pytest.mark.parametrize(
    "dataset, message",
    [
        ("imagefolder:/no/such/folder", "neither an existing folder nor a Hub dataset id"),
        ("./no/such/folder", "neither an existing folder nor a Hub dataset id"),
        ("nobody-here/no-such-dataset-xyz", "neither an existing folder nor a Hub dataset that can be loaded"),
    ],
)
def test_a_dataset_that_is_neither_a_folder_nor_a_hub_id_is_a_one_line_error(
    dataset, message, teacher_dir, capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert message in _bad(capsys, tmp_path, "--dataset", dataset, "--teacher", str(teacher_dir), *TINY)


def test_a_teacher_that_cannot_be_loaded_is_a_one_line_error(splits, tmp_path, capsys):
    empty = tmp_path / "empty_teacher"
    empty.mkdir()
    for teacher in ("no-such-teacher-xyz", str(empty)):
        err = _bad(capsys, tmp_path, "--dataset", f"imagefolder:{splits}", "--teacher", teacher, *TINY)
        assert "teacher" in err.lower()


def test_no_space_left_is_a_one_line_error_and_leaves_nothing(splits, teacher_dir, tmp_path, capsys, monkeypatch):
    real_generate = demo_labels.generate

    def full_disk(*args, **kwargs):
        real_generate(*args, **kwargs)  # the label set is half of the result by now
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(demo_labels, "generate", full_disk)
    err = _bad(capsys, tmp_path, "--dataset", f"imagefolder:{splits}", "--teacher", str(teacher_dir), *TINY, status=1)
    assert "no space left" in err and "--output-dir" in err


def test_too_little_free_space_is_refused_before_any_work(splits, teacher_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        demo_output.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20)
    )
    monkeypatch.setattr(demo_labels, "generate", lambda *a, **k: pytest.fail("work started despite a full disk"))
    assert "no space left" in _bad(
        capsys, tmp_path, "--dataset", f"imagefolder:{splits}", "--teacher", str(teacher_dir), *TINY, status=1
    )


def test_bad_options_and_foreign_output_folders_are_one_line_errors(splits, teacher_dir, tmp_path, capsys):
    data = ["--dataset", f"imagefolder:{splits}", "--teacher", str(teacher_dir)]
    assert "cannot exceed stored_crops" in _bad(capsys, tmp_path, *data, *TINY, "--num_crops", "8")
    assert "at least 1" in _bad(capsys, tmp_path, *data, *TINY, "--batch_size", "0")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    code = cli_main(["demo", *data, *TINY, "--output_dir", str(foreign)])
    assert code == 1 and "not empty" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


# --- the real runs ---------------------------------------------------------------------------------------------------


def _run_cli(args: list[str], cwd: Path, timeout: float, **env) -> subprocess.CompletedProcess:
    """``fkd-hf demo ARGS`` in a fresh process, offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "fkd_hf", "demo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_default_demo_runs_offline_from_cold_caches(tmp_path):
    """`fkd-hf demo` as a newcomer runs it: a fresh process, the sample photos, efficientnet-lite0, on the CPU."""
    if importlib.util.find_spec(demo_data.PHOTOS_PACKAGE) is None:
        pytest.skip("foolbox (the PyPI package with the demo photos) is not installed: pip install 'fkd-hf[demo]'")
    # Cold caches, as after a fresh install: the photo folder and the datasets cache are built from scratch.
    done = _run_cli(
        ["--output_dir", str(tmp_path / "demo")],
        tmp_path,
        timeout=900,
        FKD_HF_CACHE=str(tmp_path / "fkd_cache"),
        HF_HOME=str(tmp_path / "hf_home"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout[-4000:])
    result = json.loads((tmp_path / "demo" / RESULT_FILE).read_text())
    assert result["mode"] == "photos" and result["teacher_top1"] >= 0.8
    assert result["runs"]["fkd"]["top1"] >= 0.6  # agreement with the teacher on held-out crops


@pytest.mark.slow
@pytest.mark.skipif(not IMAGENETTE.is_dir(), reason=f"imagenette-mini is not at {IMAGENETTE}")
def test_imagenette_fkd_student_beats_plain_training(tmp_path):
    args = [
        "--dataset",
        f"imagefolder:{IMAGENETTE}",
        "--teacher",
        "efficientnet-lite0",
        "--compare",
        "--output_dir",
        str(tmp_path / "demo"),
    ]
    done = _run_cli(args, REPO_ROOT, timeout=2400)
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout[-4000:])
    result = json.loads((tmp_path / "demo" / RESULT_FILE).read_text())
    fkd, plain = result["runs"]["fkd"]["top1"], result["runs"]["plain"]["top1"]
    assert result["teacher_top1"] > 0.9
    # Against plain training as usual (one decoded photo per crop). Measured (fp32, 2 cores, 11.9 min): FKD (spread)
    # 69.0 % vs plain 67.2 %, +1.8 points = 1.6 standard errors of the paired difference: ahead, not yet by two.
    difference, error = result["fkd_minus_plain"], result["fkd_minus_plain_se"]
    assert difference == pytest.approx(fkd - plain) and difference > 0, f"FKD {fkd:.3f} vs plain {plain:.3f}"
    assert result["plain_source"].endswith("one decoded photo per crop (plain training as usual)") and error > 0
