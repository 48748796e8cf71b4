"""The input-pipeline benchmark (benchmarks/pipeline.py) and the device check (benchmarks/gpu_check.sh), on tiny
photos and a tiny teacher, on the CPU."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from _fkd_data import make_splits
from conftest import REPO_ROOT
from PIL import Image

if str(REPO_ROOT) not in sys.path:  # benchmarks/ is not an installed package: import it from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import pipeline  # noqa: E402
from benchmarks.pipeline import arms, timing  # noqa: E402
from fkd_hf.labels.crops import crop_rng, crops_to_pixels, replay_crops, sample_crops  # noqa: E402
from fkd_hf.labels.decode import decode_pixels  # noqa: E402


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


def test_the_benchmark_measures_every_method(tmp_path, image_folder):
    output = tmp_path / "pipeline.json"
    args = pipeline.make_parser().parse_args([
        "--dataset", f"imagefolder:{image_folder}", "--photos", "12", "--sizes", "32", "--batch-crops", "8",
        "--crops", "8", "--rounds", "1", "--stored-crops", "4", "--num-crops", "2", "--classes", "10",
        "--output", str(output),
    ])  # fmt: skip
    threads = torch.get_num_threads()
    try:
        pipeline.main(args)
    finally:
        torch.set_num_threads(threads)
    data = json.loads(output.read_text())
    cost = data["cpu_s_per_1k_crops"]
    assert {"plain", "plain_fast", "relabel", "fkd", "fkd_spread", "generation"} <= set(cost)
    assert all(value > 0 for value in cost.values() if value is not None)
    assert data["decode_ms"] > 0 and data["crop_ms"] > 0 and data["photos"] == 12
    fkd, plain = data["methods"]["32"]["fkd"], data["methods"]["32"]["plain"]
    assert (fkd["crops_per_decode"], plain["crops_per_decode"], data["generation"]["generation"]["crops_per_decode"]) \
        == (2, 1, 4)  # fmt: skip
    assert 0 < fkd["share_of_bound"] < 5 and fkd["targets_cpu_s_per_1k_crops"] > 0
    assert data["methods"]["32"]["relabel"]["targets_cpu_s_per_1k_crops"] > 0
    assert data["load_average"]["start"] >= 0


def test_the_device_check_runs_on_the_cpu(tmp_path, teacher_dir):
    images = make_splits(tmp_path / "images")
    env = dict(os.environ, DATASET=str(images), TEACHER=str(teacher_dir), OUT=str(tmp_path / "out"))
    script = REPO_ROOT / "benchmarks" / "gpu_check.sh"
    done = subprocess.run(["bash", str(script), "--device", "cpu"], env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["device"] == "cpu" and result["gpu"] is None
    assert result["generation"]["rows"] == 12 and result["generation"]["crops"] == 12 * 8
    assert result["training"]["train_crops_per_second"] > 0
    assert result["teacher_eval"]["device"] == "cpu" and 0 <= result["teacher_eval"]["teacher_top1"] <= 1
    assert result["pipeline"]["cpu_s_per_1k_crops"]["fkd"] > 0
