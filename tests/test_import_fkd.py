"""``fkd-hf import-fkd``: official FKD label files (written here in the format of FKD_SLG/generate_soft_label.py, by a
tiny teacher) become a label set whose training data holds the files' crops and targets."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from conftest import REPO_ROOT
from PIL import Image
from torchvision.transforms import InterpolationMode, RandomResizedCrop

from fkd_hf.cli import run_command
from fkd_hf.generation.import_config import ImportFKDConfig
from fkd_hf.generation.official_import import import_fkd
from fkd_hf.labels import join_labels, load_images, load_label_set, reconstruct
from fkd_hf.labels.crops import crops_to_pixels
from fkd_hf.labels.format import METADATA_FILE
from fkd_hf.labels.official import OfficialFileError, load_label_file
from fkd_hf.training import FKDCropDataset, select_crops

NUM_CLASSES = 12  # > 10, so that every official label type (k up to 10) applies
R = 4
SIZE = 32
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LABEL_TYPES = ["hard", "smoothing", "marginal_smoothing_k5", "marginal_renorm_k5", "marginal_smoothing_k10"]


def _official_quantization(probs: torch.Tensor, label_type: str) -> np.ndarray:
    """The official generator's ``label_quantization``: R labels of one image, as it stores them."""
    if label_type == "hard":
        return probs.argmax(-1).numpy()
    if label_type == "smoothing":
        top = probs.argmax(-1)
        return torch.stack([top.float(), probs.gather(-1, top[:, None])[:, 0]], dim=1).numpy()
    k = int(label_type.rsplit("_k", 1)[1])
    order = probs.argsort(-1, descending=True)[:, :k]
    return torch.stack([order.float(), probs.gather(-1, order)], dim=1).numpy()


def _official_targets(labels: np.ndarray, label_type: str) -> np.ndarray:
    """The official trainer's ``Recover_soft_label``, in numpy: dense targets from stored labels."""
    c = NUM_CLASSES
    labels = labels.astype(np.float64)
    if label_type == "hard":
        return np.eye(c)[labels.astype(int)]
    if label_type == "smoothing":
        out = np.repeat(((1 - labels[:, 1]) / (c - 1))[:, None], c, axis=1)
        out[np.arange(len(labels)), labels[:, 0].astype(int)] = labels[:, 1]
        return out
    index, value = labels[:, 0].astype(int), labels[:, 1]
    rows = np.arange(len(labels))[:, None]
    if label_type.startswith("marginal_renorm"):
        out = np.zeros((len(labels), c))
        out[rows, index] = value
        return out / out.sum(1, keepdims=True)
    out = np.repeat(((1 - value.sum(1)) / (c - index.shape[1]))[:, None], c, axis=1)
    out[rows, index] = value
    return out


@pytest.fixture(scope="module")
def official_crops(image_folder):
    """The official generator's work on the tiny photos: torchvision's RandomResizedCrop boxes (as float32
    fractions), flips, and a tiny 12-class teacher's softmax on each crop."""
    import timm

    torch.manual_seed(0)
    teacher = timm.create_model("test_resnet", num_classes=NUM_CLASSES).eval()
    out = {}
    for path in sorted(image_folder.glob("*/*")):
        image = Image.open(path).convert("RGB")
        boxes = [RandomResizedCrop.get_params(image, (0.08, 0.936), (3 / 4, 4 / 3)) for _ in range(R)]
        flips = np.array([bool(torch.rand(1) < 0.5) for _ in range(R)])
        inputs = []
        for (i, j, h, w), flip in zip(boxes, flips):
            crop = TF.resized_crop(image, i, j, h, w, [SIZE, SIZE], InterpolationMode.BICUBIC)
            inputs.append(TF.normalize(TF.to_tensor(TF.hflip(crop) if flip else crop), MEAN, STD))
        with torch.no_grad():
            probs = teacher(torch.stack(inputs)).softmax(-1)
        coords = torch.FloatTensor(
            [[i / image.height, j / image.width, h / image.height, w / image.width] for i, j, h, w in boxes]
        ).numpy()
        out[path] = dict(boxes=np.array(boxes), coords=coords, flips=flips, probs=probs)
    return out


def write_official_folder(official_crops, root: Path, label_type: str, fp16: bool) -> Path:
    """``root/train/<class>/<stem>.tar`` files as the official generator saves them (``--use_fp16``: float16)."""
    for path, crop in official_crops.items():
        labels = _official_quantization(crop["probs"], label_type)
        coords = crop["coords"]
        if fp16:
            coords, labels = coords.astype(np.float16), labels.astype(np.float16)
        target = root / "train" / path.parent.name / f"{path.name.split('.')[0]}.tar"
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save([coords, crop["flips"], labels], target)
    return root


def _config(image_folder, label_dir, output_dir, **overrides) -> ImportFKDConfig:
    options = dict(
        label_dir=str(label_dir),
        dataset=f"imagefolder:{image_folder}",
        output_dir=str(output_dir),
        teacher="test_resnet",
        num_classes=NUM_CLASSES,
        input_size=SIZE,
        num_workers=1,
    )
    options.update(overrides)
    return ImportFKDConfig(**options)


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
@pytest.mark.parametrize("label_type", LABEL_TYPES)
def test_training_data_of_an_imported_set_holds_the_official_crops_and_targets(
    official_crops, image_folder, tmp_path, label_type, fp16
):
    label_dir = write_official_folder(official_crops, tmp_path / "official", label_type, fp16)
    kind = label_type if label_type.startswith("marginal_renorm") else None  # the shape cannot tell it
    summary = import_fkd(_config(image_folder, label_dir, tmp_path / "labels", kind=kind, num_shards=2))
    assert (summary.rows, summary.crops, summary.skipped_rows) == (18, 18 * R, 0)

    labels = load_label_set(tmp_path / "labels")
    meta = json.loads((tmp_path / "labels" / METADATA_FILE).read_text())
    assert meta["provenance"]["label_type"] == label_type and meta["provenance"]["method"] == "converted"
    assert meta["replay"] == "pil"  # the official generator cut its crops with PIL; new sets default to tensor
    assert (labels.metadata.stored_crops, labels.metadata.num_classes, labels.metadata.num_shards) == (R, 12, 2)
    images = load_images(f"imagefolder:{image_folder}")
    paths = [Path(value["path"]) for value in images.dataset["image"]]
    rows = join_labels(images, labels, check_rows=-1)  # every row's image_key is that of its image
    dataset = FKDCropDataset(rows, labels.metadata, num_crops=2, size=(SIZE, SIZE), interpolation="bicubic")
    for pass_index in range(2):
        dataset.set_pass(pass_index)
        for row, sample in enumerate(dataset.__getitems__(list(range(len(dataset))))):
            official = official_crops[paths[row]]
            chosen = select_crops(0, row, pass_index, R, 2)
            stored = _official_quantization(official["probs"], label_type)[chosen]
            expected = _official_targets(stored.astype(np.float16) if fp16 else stored, label_type)
            targets = reconstruct(sample["topk_indices"], sample["topk_values"], labels.metadata.kind, NUM_CLASSES)
            # the label-set format stores probabilities as float16: exact for fp16 files, rounded for fp32 ones
            np.testing.assert_allclose(targets.numpy(), expected, rtol=0 if fp16 else 2e-3, atol=1e-6 if fp16 else 2e-4)
    stored_rows = labels.dataset.with_format("numpy")
    for row, path in enumerate(paths):
        official = official_crops[path]
        np.testing.assert_array_equal(stored_rows[row]["crops"], official["coords"].astype(np.float16))
        np.testing.assert_array_equal(stored_rows[row]["flips"], official["flips"])
        height, width = Image.open(path).size[::-1]
        # the official boxes are whole pixels; fkd-hf's replay finds exactly them again on images this small
        np.testing.assert_array_equal(crops_to_pixels(stored_rows[row]["crops"], height, width), official["boxes"])


def test_missing_and_extra_files_are_named_and_skip_missing_records_them(official_crops, image_folder, tmp_path):
    label_dir = write_official_folder(official_crops, tmp_path / "official", "marginal_smoothing_k5", False)
    lost = label_dir / "train" / "dog" / "dog_02.tar"
    lost.unlink()
    stray = label_dir / "train" / "dog" / "wolf_00.tar"
    torch.save(load_label_file(label_dir / "train" / "cat" / "cat_00.tar"), stray)
    config = _config(image_folder, label_dir, tmp_path / "labels")
    with pytest.raises(
        FileNotFoundError,
        match=r"1 images have no label file \(first: .*dog_02\.jpg.*1 label files "
        r"have no image .*wolf_00\.tar.*--skip_missing",
    ):
        import_fkd(config)
    assert not (tmp_path / "labels").exists()  # reported before any work

    import_fkd(_config(image_folder, label_dir, tmp_path / "labels", skip_missing=True))
    labels = load_label_set(tmp_path / "labels")
    paths = [value["path"] for value in load_images(f"imagefolder:{image_folder}").dataset["image"]]
    assert labels.metadata.num_rows == 18
    assert labels.metadata.skipped_rows == [paths.index(str(image_folder / "dog" / "dog_02.jpg"))]
    provenance = json.loads((tmp_path / "labels" / METADATA_FILE).read_text())["provenance"]
    assert (provenance["images_without_label_file"], provenance["label_files_without_image"]) == (1, 1)


def test_a_file_of_the_wrong_shape_is_named_and_a_resume_may_skip_it(official_crops, image_folder, tmp_path):
    label_dir = write_official_folder(official_crops, tmp_path / "official", "marginal_smoothing_k5", False)
    bad = label_dir / "train" / "fox" / "fox_03.tar"  # fox photos are the last rows: in the last of 3 shards
    coords, flips, labels = load_label_file(bad)
    torch.save([coords[:3], flips, labels], bad)
    message = rf"{bad}: coords has shape \(3, 4\), expected \(4, 4\).*--skip_missing"
    with pytest.raises(OfficialFileError, match=message):
        import_fkd(_config(image_folder, label_dir, tmp_path / "labels", num_shards=3))
    assert not (tmp_path / "labels" / METADATA_FILE).exists()
    first = tmp_path / "labels" / "data" / "shard-00000.parquet"
    kept = first.stat().st_mtime_ns

    import_fkd(_config(image_folder, label_dir, tmp_path / "labels", num_shards=3, skip_missing=True))
    assert first.stat().st_mtime_ns == kept  # finished shards are kept
    paths = [value["path"] for value in load_images(f"imagefolder:{image_folder}").dataset["image"]]
    skipped = paths.index(str(image_folder / "fox" / "fox_03.png"))
    assert load_label_set(tmp_path / "labels").metadata.skipped_rows == [skipped]


def test_a_file_holding_other_objects_is_refused_not_unpickled(official_crops, image_folder, tmp_path):
    label_dir = write_official_folder(official_crops, tmp_path / "official", "hard", False)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    bad = label_dir / "train" / "cat" / "cat_01.tar"
    torch.save([np.zeros((R, 4), np.float32), np.zeros(R, bool), Payload()], bad)
    with pytest.raises(OfficialFileError, match="not unpickled"):
        load_label_file(bad)
    with pytest.raises(OfficialFileError, match="cat_01.tar"):
        import_fkd(_config(image_folder, label_dir, tmp_path / "labels"))
    assert not marker.exists()


def test_files_pickled_by_numpy_1_load(official_crops, tmp_path):
    """The published files predate numpy 2, which renamed the module that rebuilds arrays (numpy.core -> _core)."""
    label_dir = write_official_folder(official_crops, tmp_path / "official", "smoothing", True)
    modern = next(label_dir.rglob("*.tar"))
    legacy = tmp_path / "legacy.tar"
    with zipfile.ZipFile(modern) as source, zipfile.ZipFile(legacy, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            target.writestr(info, data)
    for got, expected in zip(load_label_file(legacy), load_label_file(modern)):
        np.testing.assert_array_equal(got, expected)


def test_interrupted_import_resumes_and_other_options_are_refused(official_crops, image_folder, tmp_path):
    label_dir = write_official_folder(official_crops, tmp_path / "official", "marginal_smoothing_k10", True)
    reference = tmp_path / "reference"
    import_fkd(_config(image_folder, label_dir, reference, num_shards=3))
    config = _config(image_folder, label_dir, tmp_path / "resumed", num_shards=3)
    import_fkd(config)
    (tmp_path / "resumed" / "data" / "shard-00001.parquet").unlink()
    (tmp_path / "resumed" / METADATA_FILE).unlink()
    kept = (tmp_path / "resumed" / "data" / "shard-00000.parquet").stat().st_mtime_ns
    import_fkd(config)
    assert (tmp_path / "resumed" / "data" / "shard-00000.parquet").stat().st_mtime_ns == kept  # not redone
    for name in ("shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"):
        assert (reference / "data" / name).read_bytes() == (tmp_path / "resumed" / "data" / name).read_bytes()
    with pytest.raises(FileExistsError, match=r"different options \(temperature\)"):
        import_fkd(_config(image_folder, label_dir, tmp_path / "resumed", num_shards=3, temperature=2.0))


def test_cli_takes_the_label_folder_first_and_the_card_says_the_labels_were_converted(
    official_crops, image_folder, tmp_path, capsys
):
    import fkd_hf.cli.import_fkd as command

    label_dir = write_official_folder(official_crops, tmp_path / "official", "marginal_smoothing_k5", True)
    argv = [
        str(label_dir),
        "--dataset",
        f"imagefolder:{image_folder}",
        "--output_dir",
        str(tmp_path / "labels"),
        "--num_classes",
        "12",
        "--teacher",
        "tf_efficientnet_l2_ns_475",
        "--temperature",
        "1.0",
    ]
    assert run_command(command, argv) == 0
    metadata = load_label_set(tmp_path / "labels").metadata
    assert (metadata.kind, metadata.k, metadata.teacher) == ("marginal_smoothing", 5, "tf_efficientnet_l2_ns_475")
    card = (tmp_path / "labels" / "README.md").read_text()
    assert "converted, not regenerated" in card
    assert "FKD_SLG/generate_soft_label.py" in card and "marginal_smoothing_k5" in card
    assert "tf_efficientnet_l2_ns_475" in card and "arxiv.org/abs/2112.01528" in card

    assert (
        run_command(
            command,
            [
                str(label_dir),
                "--dataset",
                f"imagefolder:{image_folder}",
                "--output_dir",
                str(tmp_path / "other"),
                "--kind",
                "full",
            ],
        )
        == 2
    )
    assert "Unknown kind 'full' for official label files" in capsys.readouterr().err
    shutil.rmtree(label_dir / "train" / "cat")
    assert run_command(command, argv[:4] + [str(tmp_path / "again"), "--num_classes", "12"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "6 images have no label file" in err[0] and "--skip_missing" in err[0]


def test_classes_beyond_the_dataset_need_num_classes(official_crops, image_folder, tmp_path):
    label_dir = write_official_folder(official_crops, tmp_path / "official", "marginal_smoothing_k5", False)
    with pytest.raises(OfficialFileError, match=r"class indices must be whole numbers in \[0, 3\).*--num_classes"):
        import_fkd(_config(image_folder, label_dir, tmp_path / "labels", num_classes=None))


@pytest.mark.distributed
def test_two_process_import_equals_one_process_import(official_crops, image_folder, tmp_path):
    label_dir = write_official_folder(official_crops, tmp_path / "official", "marginal_smoothing_k5", True)
    script = tmp_path / "import_fkd.py"
    script.write_text(
        "import sys\nfrom fkd_hf.cli import run_command\nimport fkd_hf.cli.import_fkd as command\n"
        "sys.exit(run_command(command, sys.argv[1:]))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    argv = [
        str(label_dir),
        "--dataset",
        f"imagefolder:{image_folder}",
        "--output_dir",
        str(tmp_path / "double"),
        "--num_classes",
        "12",
        "--num_shards",
        "5",
        "--teacher",
        "test_resnet",
        "--input_size",
        "32",
    ]
    double = subprocess.run([*torchrun, *argv], env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]
    assert double.stdout.count("Label set in") == 1  # one job of two processes
    import_fkd(_config(image_folder, label_dir, tmp_path / "single", num_shards=5))
    for shard in range(5):
        name = f"shard-{shard:05d}.parquet"
        assert (tmp_path / "single" / "data" / name).read_bytes() == (tmp_path / "double" / "data" / name).read_bytes()


def _torchvision_box(image: Image.Image, coords: np.ndarray) -> np.ndarray:
    """(top, left, bottom, right) of the pixels torchvision's ``resized_crop`` cuts for official ``coords``, read
    back from an image whose pixel values are their own positions (as the official trainer replays them)."""
    height, width = image.height, image.width
    i, j, h, w = (float(value) * scale for value, scale in zip(coords, (height, width, height, width)))
    cut = TF.crop(image, i, j, h, w)
    first, last = cut.getpixel((0, 0)), cut.getpixel((cut.width - 1, cut.height - 1))
    (top, left), (bottom, right) = divmod(first, width), divmod(last, width)
    return np.array([top, left, bottom + 1, right + 1])


@pytest.mark.parametrize(
    "size, dtype, worst",
    [
        ((480, 640), "float32", 0),
        ((1000, 900), "float16", 0),
        ((2000, 1800), "float32", 0),
        ((3000, 2600), "float32", 2),
        ((3000, 2600), "float16", 1),
    ],
)
def test_replay_of_official_crops_matches_torchvision_up_to_the_documented_pixels(size, dtype, worst):
    """Exact on images up to 2048 px (float32 files) or 1024 px (float16 files); beyond, float16 storage and
    rounding height and top apart move an edge by at most ``worst`` pixels (and do move some)."""
    height, width = size
    image = Image.fromarray(np.arange(height * width, dtype=np.int32).reshape(height, width))
    torch.manual_seed(0)
    found = 0
    for _ in range(100):
        i, j, h, w = RandomResizedCrop.get_params(image, (0.08, 0.936), (3 / 4, 4 / 3))
        coords = torch.FloatTensor([i / height, j / width, h / height, w / width]).numpy().astype(dtype)
        top, left, h, w = crops_to_pixels(coords.astype(np.float16), height, width)[0]
        found = max(found, np.abs(np.array([top, left, top + h, left + w]) - _torchvision_box(image, coords)).max())
    assert found <= worst and (found > 0 or worst == 0)


def test_files_that_disagree_on_r_are_named_both_and_the_majority_decides(official_crops, image_folder, tmp_path):
    label_dir = write_official_folder(official_crops, tmp_path / "official", "marginal_smoothing_k5", True)
    odd = label_dir / "train" / "cat" / "cat_00.tar"  # row 0: the file a layout read from the first file trusts
    coords, flips, labels = load_label_file(odd)
    torch.save([np.tile(coords, (10, 1)), np.tile(flips, 10), np.tile(labels, (10, 1, 1))], odd)  # R = 40
    with pytest.raises(OfficialFileError) as caught:
        import_fkd(_config(image_folder, label_dir, tmp_path / "labels"))
    message = str(caught.value)
    found = re.fullmatch(
        rf"{re.escape(str(odd))}: coords has shape \(40, 4\), expected \(4, 4\)\. The label files "
        rf"disagree on R: most hold 4 crops, as (\S+) does\. .*--skip_missing.*",
        message,
    )
    assert found and Path(found.group(1)).is_file() and Path(found.group(1)) != odd, message

    summary = import_fkd(_config(image_folder, label_dir, tmp_path / "labels", skip_missing=True))
    assert (summary.rows, summary.skipped_rows, summary.crops) == (18, 1, 17 * R)  # real crops only
    assert load_label_set(tmp_path / "labels").metadata.stored_crops == R


@pytest.mark.parametrize(
    "part, index, value, message",
    [
        (0, (1,), [5, -3, 40, -2], r"coords must be fractions of the image in \[0, 1\], found -3.0..40.0"),
        (2, (0, 1, 0), -7, r"probabilities must lie in \[0, 1\], found -7.0"),
        (2, (3, 1, 2), 1e4, r"probabilities must lie in \[0, 1\], found .*10000.0"),
        (2, (2, 1), 0.5, r"the probabilities stored for a crop sum to 2.5000, more than 1"),
    ],
)
def test_impossible_values_in_a_file_are_refused_with_the_file_named(
    official_crops, image_folder, tmp_path, part, index, value, message
):
    label_dir = write_official_folder(official_crops, tmp_path / "official", "marginal_smoothing_k5", False)
    bad = label_dir / "train" / "dog" / "dog_01.tar"
    state = list(load_label_file(bad))
    state[part][index] = value
    torch.save(state, bad)
    with pytest.raises(OfficialFileError, match=rf"{re.escape(str(bad))}: {message}.*--skip_missing"):
        import_fkd(_config(image_folder, label_dir, tmp_path / "labels"))
    assert not (tmp_path / "labels" / METADATA_FILE).exists()


def test_an_empty_file_is_named_empty(tmp_path):
    empty = tmp_path / "n01440764_10026.tar"
    empty.write_bytes(b"")
    with pytest.raises(OfficialFileError, match=rf"{re.escape(str(empty))}: .*\(empty file\)\.$"):
        load_label_file(empty)
