import datasets
import numpy as np
import pyarrow as pa
import pytest

from fkd_hf import generate, load_label_set
from fkd_hf.labels.format import LABEL_COLUMNS, METADATA_FILE, LabelSetMetadata, label_features, rows_to_table
from fkd_hf.labels.images import image_bytes, image_key, load_images


def _table(n, r, k, num_classes):
    rng = np.random.default_rng(0)
    columns = {
        "image_key": [f"{i:032x}" for i in range(n)],
        "crops": rng.random((n, r, 4)).astype(np.float16),
        "flips": rng.random((n, r)) < 0.5,
        "topk_indices": rng.integers(0, num_classes, (n, r, k)),
        "topk_values": rng.random((n, r, k)).astype(np.float16),
    }
    return rows_to_table(columns, label_features(r, k, num_classes)), columns


def test_columns_and_dtypes():
    table, _ = _table(3, 4, 5, 1000)
    assert table.column_names == list(LABEL_COLUMNS)
    assert table.schema.field("topk_indices").type == pa.list_(pa.list_(pa.int16(), 5), 4)
    assert table.schema.field("topk_values").type == pa.list_(pa.list_(pa.float16(), 5), 4)
    big, _ = _table(2, 1, 1, 40000)
    assert big.schema.field("topk_indices").type.value_type.value_type == pa.int32()


def test_at_most_29_bytes_per_crop_before_compression_for_k5():
    n, r = 64, 8
    table, _ = _table(n, r, 5, 1000)
    label_bytes = sum(table.column(name).nbytes for name in LABEL_COLUMNS[1:])
    assert label_bytes / (n * r) <= 29


def test_generated_label_set_round_trips_with_metadata(generate_config, image_folder, tmp_path):
    # a folder name of its own: with datasets 5.2, `load_dataset` of a folder named "labels" read back the rows of
    # test_cards' "labels" folder, loaded earlier in the session (its cache)
    config = generate_config(output_dir=str(tmp_path / "round-trip"))
    summary = generate(config)
    labels = load_label_set(config.output_dir)
    meta = labels.metadata
    assert meta == LabelSetMetadata.from_dict(labels.metadata.to_dict())
    assert (meta.kind, meta.k, meta.stored_crops, meta.num_rows) == ("marginal_smoothing", 2, 3, 18)
    assert meta.class_names == ["cat", "dog", "fox"] and meta.teacher_input_size == [32, 32]
    assert summary.rows == 18 and summary.crops == 54 and summary.bytes_per_crop == meta.bytes_per_crop

    # `load_dataset(dir)` on the folder reads the same rows (its card points at data/*.parquet).
    plain = datasets.load_dataset(config.output_dir, split="train")
    assert plain.num_rows == 18 and plain.column_names == list(LABEL_COLUMNS)
    np.testing.assert_array_equal(plain.with_format("numpy")["crops"], labels.dataset.with_format("numpy")["crops"])

    # Joined column-wise with the source images, each image_key is the hash of that row's image.
    images = load_images(f"imagefolder:{image_folder}").dataset
    joined = datasets.concatenate_datasets([images, labels.dataset], axis=1)
    for row in joined:
        assert row["image_key"] == image_key(image_bytes(row["image"]))


def test_unfinished_label_set_is_refused(generate_config, tmp_path):
    config = generate_config()
    generate(config)
    (tmp_path / "labels" / METADATA_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="rerun the same command"):
        load_label_set(config.output_dir)


def test_newer_format_asks_for_an_upgrade():
    with pytest.raises(ValueError, match="upgrade fkd_hf"):
        LabelSetMetadata.from_dict({"format_version": 99})


def test_a_mistyped_folder_is_named_at_once_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from fkd_hf.errors import InputNotFoundError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        InputNotFoundError,
        match=r"^no label-set folder outputs/nonexistent \(and no Hub dataset of "
        r"that name: HF_HUB_OFFLINE is set",
    ):
        load_label_set("outputs/nonexistent")
    with pytest.raises(InputNotFoundError, match="neither a label-set folder nor a Hub dataset repo id"):
        load_label_set("./outputs/nonexistent")  # path-shaped, not a Hub id: the Hub is not asked


def test_a_mistyped_folder_is_named_at_once_when_the_hub_cannot_be_reached(tmp_path, monkeypatch):
    import socket
    import time

    from huggingface_hub import constants

    from fkd_hf.errors import InputNotFoundError

    with socket.socket() as closed:  # a port nothing listens on: every connection is refused
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))

    def no_retries(seconds):
        raise AssertionError(f"waited {seconds} s to retry a Hub that cannot be reached")

    monkeypatch.setattr(time, "sleep", no_retries)
    with pytest.raises(
        InputNotFoundError,
        match=r"^no label-set folder outputs/nonexistent \(and no Hub dataset of "
        r"that name: the Hub cannot be reached",
    ):
        load_label_set("outputs/nonexistent")
