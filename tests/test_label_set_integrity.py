"""A label set's shards carry the fields that define their values: loading (hence train and push) cross-checks them
with fkd_labels.json and names the file and field that disagree; a format-version-1 set still loads and trains."""

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fkd_hf import FKDConfig, generate, load_label_set, train
from fkd_hf.hub.push import check_label_set_folder
from fkd_hf.labels.checks import LabelSetError
from fkd_hf.labels.format import LABEL_SET_KEY, METADATA_FILE


@pytest.fixture(scope="module")
def label_set(tmp_path_factory, image_folder, teacher_dir):
    from fkd_hf import GenerateConfig

    root = tmp_path_factory.mktemp("integrity")
    generate(
        GenerateConfig(
            dataset=f"imagefolder:{image_folder}",
            output_dir=str(root / "labels"),
            teacher=str(teacher_dir),
            stored_crops=3,
            k=2,
            num_shards=3,
            num_workers=0,
        )
    )
    return root / "labels"


@pytest.fixture
def copy(label_set, tmp_path) -> Path:
    return Path(shutil.copytree(label_set, tmp_path / "copy"))


def _edit(folder: Path, **changes) -> None:
    path = folder / METADATA_FILE
    path.write_text(json.dumps(dict(json.loads(path.read_text()), **changes)))


def test_shards_record_the_fields_that_define_their_values(label_set):
    stored = json.loads(pq.read_schema(label_set / "data" / "shard-00000.parquet").metadata[LABEL_SET_KEY])
    meta = load_label_set(label_set).metadata
    assert stored == meta.defining()
    assert (stored["kind"], stored["k"], stored["temperature"], stored["stored_crops"], stored["seed"]) == (
        meta.kind,
        meta.k,
        meta.temperature,
        meta.stored_crops,
        meta.seed,
    )
    assert stored["class_names"].startswith("blake2b:")


@pytest.mark.parametrize(
    "changes,field",
    [
        (dict(temperature=4.0), r"temperature=1.0, but fkd_labels.json says temperature=4.0"),
        (dict(kind="hard"), r"kind='marginal_smoothing', but fkd_labels.json says kind='hard'"),
        (dict(k=3), r"k=2, but fkd_labels.json says k=3"),
        (dict(stored_crops=4), r"stored_crops=3, but fkd_labels.json says stored_crops=4"),
        (dict(class_names=["a", "b", "c"]), r"class_names than fkd_labels.json lists"),
    ],
)
def test_an_edited_fkd_labels_json_is_named_with_the_field_and_the_repair(copy, changes, field):
    _edit(copy, **changes)
    message = rf"shard-00000.parquet \(and 2 more\) was made with (other )?{field}.*was edited.*rerun the `fkd-hf"
    with pytest.raises(LabelSetError, match=message):
        load_label_set(copy)
    with pytest.raises(LabelSetError, match=message):  # what `fkd-hf push-labels` runs first
        check_label_set_folder(copy)


def test_a_truncated_shard_is_named_on_load_push_and_train(copy, image_folder, tmp_path):
    shard = copy / "data" / "shard-00002.parquet"
    shard.write_bytes(shard.read_bytes()[:-64])
    message = r"data/shard-00002.parquet is unreadable \(truncated or not parquet.*To repair it, rerun"
    with pytest.raises(LabelSetError, match=message):
        load_label_set(copy)
    with pytest.raises(LabelSetError, match=message):
        check_label_set_folder(copy)
    with pytest.raises(LabelSetError, match=message):
        train(
            FKDConfig(
                label_set=str(copy),
                student="test_resnet",
                output_dir=str(tmp_path / "s"),
                max_steps=1,
                report_to="none",
                use_cpu=True,
            )
        )


def test_a_missing_shard_and_a_foreign_file_are_named(copy):
    (copy / "data" / "shard-00001.parquet").unlink()
    (copy / "data" / "extra.parquet").write_bytes(b"")
    with pytest.raises(LabelSetError, match=r"data/extra.parquet is not a shard.*data/shard-00001.parquet is missing"):
        load_label_set(copy)


def _as_version_1(folder: Path, strip_shard_fields: bool) -> None:
    meta = json.loads((folder / METADATA_FILE).read_text())
    meta["num_crops"] = meta.pop("stored_crops")
    meta["format_version"] = 1
    for key in ("max_rows", "dataset_absolute", "dataset_class_names", "card_digest"):
        meta.pop(key)
    (folder / METADATA_FILE).write_text(json.dumps(meta))
    if strip_shard_fields:  # shards written before they carried their fields
        for path in (folder / "data").glob("*.parquet"):
            table = pq.read_table(path)
            metadata = {k: v for k, v in table.schema.metadata.items() if k != LABEL_SET_KEY}
            pq.write_table(table.replace_schema_metadata(metadata), path, compression="zstd")


def test_a_version_1_label_set_loads_trains_and_keeps_its_shards(label_set, copy, tmp_path):
    _as_version_1(copy, strip_shard_fields=False)
    before = {p.name: p.read_bytes() for p in (copy / "data").glob("*.parquet")}
    assert before == {p.name: p.read_bytes() for p in (label_set / "data").glob("*.parquet")}
    old, new = load_label_set(copy), load_label_set(label_set)
    assert old.metadata.stored_crops == new.metadata.stored_crops == 3 and old.metadata.format_version == 2
    assert old.dataset.to_dict() == new.dataset.to_dict()
    metrics = train(
        FKDConfig(
            label_set=str(copy),
            student="test_resnet",
            input_size=32,
            num_crops=2,
            max_steps=2,
            output_dir=str(tmp_path / "student"),
            per_device_train_batch_size=4,
            report_to="none",
            save_strategy="no",
            use_cpu=True,
            dataloader_num_workers=0,
        )
    )
    assert metrics["train_loss"] > 0
    assert {p.name: p.read_bytes() for p in (copy / "data").glob("*.parquet")} == before  # nothing rewritten

    stripped = Path(shutil.copytree(label_set, tmp_path / "stripped"))
    _as_version_1(stripped, strip_shard_fields=True)
    assert load_label_set(stripped).dataset.to_dict() == new.dataset.to_dict()
    _edit(stripped, k=3)  # no fields in its shards: R and k are still checked against their columns
    with pytest.raises(LabelSetError, match=r"was made with k=2, but fkd_labels.json says k=3"):
        load_label_set(stripped)


def test_a_shard_with_a_sound_footer_but_damaged_pages_is_named(copy):
    shard = copy / "data" / "shard-00001.parquet"
    data = bytearray(shard.read_bytes())
    data[8:400] = bytes(392)  # the column pages; the footer at the end stays readable
    shard.write_bytes(bytes(data))
    with pytest.raises(LabelSetError, match=r"shard-00001.parquet cannot be read .*To repair it, rerun"):
        load_label_set(copy)
