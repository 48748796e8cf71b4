"""The input-pipeline benchmark (benchmarks/pipeline/) and the device check (benchmarks/gpu_check.sh), on tiny
photos and a tiny teacher, on the CPU. The FFCV arm's test runs where ffcv is installed and is skipped, saying so,
elsewhere; its skip path is tested everywhere."""

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _fkd_data import make_splits
from conftest import REPO_ROOT
from PIL import Image

if str(REPO_ROOT) not in sys.path:  # benchmarks/ is not an installed package: import it from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import pipeline  # noqa: E402
from benchmarks.pipeline import arms, ffcv_arm, photos, timing  # noqa: E402
from fkd_hf.labels.crops import crop_rng, crops_to_pixels, replay_crops, sample_crops  # noqa: E402
from fkd_hf.labels.decode import JPEG_MAGIC, decode_pixels  # noqa: E402
from fkd_hf.training import FKDCropDataset  # noqa: E402


def _jpeg(height=375, width=500) -> bytes:
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x * y) % 256], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_device_crops_are_the_tensor_replay_within_a_level():
    """The device code (float resize, as on a GPU) run on the CPU, against the CPU's uint8 ``tensor`` replay."""
    photo = decode_pixels(_jpeg())
    crops, flips = sample_crops(375, 500, 6, crop_rng(0, 1))
    boxes = crops_to_pixels(crops, 375, 500)
    on_device = arms.device_crops([photo, photo], [boxes[:2], boxes[2:]], [flips[:2], flips[2:]], (40, 48), "cpu")
    expected = torch.from_numpy(replay_crops(photo, boxes, flips, (40, 48), "bilinear", "tensor"))
    assert on_device.shape == (6, 3, 40, 48) and on_device.dtype == torch.uint8
    assert (on_device.permute(0, 2, 3, 1).int() - expected.int()).abs().max() <= 1


def test_bound_share_and_cores_follow_the_measured_times():
    args = pipeline.make_parser().parse_args(["--num-crops", "4"])
    decode = {"pil": 0.4, "tensor": 0.8, "torchvision": 0.9}  # fkd: the tensor replay's ops
    costs = {"fkd": (0.5, 0.1, 1.6), "plain": (2.0, 0.0, 1.5), "fkd_device": (0.0, 0.0, 1.2)}
    rows = timing.derive(costs, decode, args)
    fkd = rows["fkd"]
    assert fkd["crops_per_decode"] == 4 and fkd["decode_ms"] == 0.8
    assert fkd["crop_ms"] == pytest.approx((1.6 - 0.8) / 4)
    assert fkd["bound_crops_per_cpu_s"] == pytest.approx(4 / 1.6e-3)
    assert fkd["share_of_bound"] == pytest.approx(1.0)  # 0.4 ms per crop without the targets = 1.6 ms / 4 crops
    assert fkd["a100_cores"] == pytest.approx(2470 * 0.5e-3)
    assert rows["plain"]["share_of_bound"] == pytest.approx(0.75) and rows["plain"]["crops_per_decode"] == 1
    assert rows["fkd_device"]["cpu_s_per_1k_crops"] == pytest.approx(0.3)  # a bound: T / m


def test_draft_decoding_needs_every_stored_crop_twice_the_output():
    shares = timing.draft_shares([_jpeg(), _jpeg(300, 420)], 8, [1, 200])
    assert shares == {"1": {"fkd": 1.0, "single": 1.0}, "200": {"fkd": 0.0, "single": 0.0}}


def _run_benchmark(tmp_path: Path, image_folder: Path, *flags: str) -> dict:
    """The benchmark's results on the tiny photos (12 photos, 32 px crops, one short round)."""
    output = tmp_path / "pipeline.json"
    args = pipeline.make_parser().parse_args(
        [
            "--dataset",
            f"imagefolder:{image_folder}",
            "--photos",
            "12",
            "--sizes",
            "32",
            "--batch-crops",
            "8",
            "--crops",
            "8",
            "--rounds",
            "1",
            "--stored-crops",
            "4",
            "--num-crops",
            "2",
            "--classes",
            "10",
            "--output",
            str(output),
            *flags,
        ]
    )
    threads = torch.get_num_threads()
    try:
        pipeline.main(args)
    finally:
        torch.set_num_threads(threads)
    return json.loads(output.read_text())


def test_the_benchmark_measures_every_method(tmp_path, image_folder):
    data = _run_benchmark(tmp_path, image_folder)
    cost = data["cpu_s_per_1k_crops"]
    assert {"plain", "plain_fast", "relabel", "fkd", "fkd_official", "fkd_spread", "generation"} <= set(cost)
    assert all(value > 0 for value in cost.values() if value is not None)
    assert data["decode_ms"] > 0 and data["crop_ms"] > 0 and data["photos"] == 12
    fkd, plain = data["methods"]["32"]["fkd"], data["methods"]["32"]["plain"]
    assert (
        fkd["crops_per_decode"],
        plain["crops_per_decode"],
        data["generation"]["generation"]["crops_per_decode"],
    ) == (2, 1, 4)
    assert 0 < fkd["share_of_bound"] < 5 and fkd["targets_cpu_s_per_1k_crops"] > 0
    assert data["methods"]["32"]["relabel"]["targets_cpu_s_per_1k_crops"] > 0
    assert data["load_average"]["start"] >= 0
    assert data["photos_described"] == "12 photos at 500x375 (JPEG q90)"


def test_photos_as_they_are_keep_their_bytes(image_folder):
    files = {path.read_bytes() for path in image_folder.rglob("*.*")}
    as_is = photos.train_photos(f"imagefolder:{image_folder}", 7, "as-is")
    reencoded = photos.train_photos(f"imagefolder:{image_folder}", 7)
    assert len(as_is) == 7 and set(as_is) <= files
    assert all(Image.open(io.BytesIO(data)).size == (500, 375) and data not in files for data in reencoded)
    jpeg = sum(data.startswith(JPEG_MAGIC) for data in as_is)
    assert 0 < jpeg < 7  # the tiny folder mixes JPEG and PNG
    assert photos.describe(as_is, "as-is").startswith(f"7 photos as they are ({jpeg} JPEG; median ")


def test_the_official_loader_replays_the_crops_fkd_replays():
    """fkd_official cuts the same stored crops of the pass as FKDCropDataset, with their labels; its pixels are
    torchvision's crop-then-resize of the PIL image, within a few levels of fkd-hf's PIL replay (its edges differ)."""
    rows, metadata, _ = photos.training_rows([_jpeg(), _jpeg(300, 420)], 4, 10)
    official = arms.OfficialFKDCrops(rows, metadata, 2, (40, 48))
    fkd = FKDCropDataset(rows, dataclasses.replace(metadata, replay="pil"), 2, (40, 48))
    for dataset in (official, fkd):
        dataset.set_pass(1)
    for ours, theirs in zip(official.__getitems__([0, 1]), fkd.__getitems__([0, 1])):
        assert torch.equal(ours["topk_indices"], theirs["topk_indices"])
        assert ours["pixel_values"].shape == theirs["pixel_values"].shape == (2, 40, 48, 3)
        assert (ours["pixel_values"].float() - theirs["pixel_values"].float()).abs().mean() < 3


def test_an_unknown_method_is_refused_by_name(tmp_path, image_folder):
    with pytest.raises(SystemExit, match="unknown nope; choose from plain, "):
        _run_benchmark(tmp_path, image_folder, "--methods", "plain,nope")


def test_without_ffcv_its_arm_is_skipped_with_a_note(tmp_path, image_folder, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ffcv", None)  # import ffcv now raises ImportError
    data = _run_benchmark(tmp_path, image_folder, "--methods", "plain,ffcv", "--photo-bytes", "as-is")
    assert set(data["methods"]["32"]) == {"plain"} and data["generation"] == {}
    note = next(note for note in data["notes"] if note.startswith("ffcv"))
    assert "skipped" in note and "RESULTS.md" in note and note in capsys.readouterr().out


def test_the_ffcv_arm_reads_the_photos_own_bytes(tmp_path, image_folder):
    pytest.importorskip("ffcv", reason="ffcv is not installed here (see benchmarks/RESULTS.md for its install)")
    as_is = photos.train_photos(f"imagefolder:{image_folder}", 12, "as-is")
    reencoded = ffcv_arm.write_beton(as_is, list(range(12)), tmp_path / "photos.beton")
    assert reencoded == sum(not data.startswith(JPEG_MAGIC) for data in as_is) > 0  # the PNGs
    batches, unit = ffcv_arm.ffcv_batches(tmp_path / "photos.beton", (32, 40), 4, 12)
    batch = next(batches)
    assert unit == 3 and batch["pixel_values"].shape == (4, 3, 32, 40) and batch["pixel_values"].dtype == torch.uint8
    assert batch["pixel_values"].float().std() > 0 and sorted(batch["labels"].flatten().tolist())[-1] < 12


def test_the_device_check_runs_on_the_cpu(tmp_path, teacher_dir):
    images = make_splits(tmp_path / "images")
    env = dict(os.environ, DATASET=str(images), TEACHER=str(teacher_dir), OUT=str(tmp_path / "out"))
    script = REPO_ROOT / "benchmarks" / "gpu_check.sh"
    done = subprocess.run(
        ["bash", str(script), "--device", "cpu"], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["device"] == "cpu" and result["gpu"] is None
    assert result["generation"]["rows"] == 12 and result["generation"]["crops"] == 12 * 8
    assert result["training"]["train_crops_per_second"] > 0
    assert result["teacher_eval"]["device"] == "cpu" and 0 <= result["teacher_eval"]["teacher_top1"] <= 1
    assert result["pipeline"]["cpu_s_per_1k_crops"]["fkd"] > 0
