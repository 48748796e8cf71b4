"""FKD's single-crop tail: the last pass replays one crop per photo per FKD epoch, the epoch accounting stays exact."""

import math
from collections import Counter

import numpy as np
import pytest
from _fkd_data import make_label_set, make_splits
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler, SequentialSampler
from transformers import TrainerCallback

from fkd_hf import FKDConfig
from fkd_hf.labels.attach import join_labels
from fkd_hf.labels.format import load_label_set
from fkd_hf.labels.images import load_images
from fkd_hf.training.builder import build_trainer
from fkd_hf.training.data import FKDCropDataset, select_crops
from fkd_hf.training.layouts import LAYOUTS, layout_class, plan_layout
from fkd_hf.training.layouts.grouped import GroupedLayout
from fkd_hf.training.layouts.spread import SpreadCropDataset

STORED = 4
PHOTOS = 12


@pytest.fixture(scope="module")
def data(tmp_path_factory, teacher_dir):
    root = tmp_path_factory.mktemp("tail")
    images = make_splits(root / "images")
    labels = make_label_set(images, teacher_dir, root / "labels", num_crops=STORED)
    return load_images(f"imagefolder:{images}", split="train"), load_label_set(labels), labels


def _rows(data):
    return join_labels(data[0], data[1]), data[1].metadata


def _stored(dataset, photos, rounds, pass_index):
    m = dataset.num_crops
    return [(int(p), int(select_crops(dataset.seed, int(p), pass_index, STORED, m)[r])) for p, r in zip(photos, rounds)]


@pytest.mark.parametrize("num_crops", [2, 4])
def test_the_tail_pass_shows_each_photo_once_per_fkd_epoch_with_the_pass_crops(data, num_crops):
    dataset = FKDCropDataset(*_rows(data), num_crops, (24, 24))
    dataset.set_pass(1)
    regular = dataset.crop_plan(range(PHOTOS))
    dataset.set_pass(1, tail=True)
    photos, rounds = (a.ravel() for a in dataset.crop_plan(range(PHOTOS)))
    for t in range(num_crops):  # the t-th FKD epoch of the tail: every photo once, with its crop of round t
        epoch = slice(t * PHOTOS, (t + 1) * PHOTOS)
        assert sorted(photos[epoch].tolist()) == list(range(PHOTOS)) and set(rounds[epoch].tolist()) == {t}
    assert not np.array_equal(photos[:PHOTOS], photos[PHOTOS : 2 * PHOTOS])  # each FKD epoch its own order
    assert sorted(_stored(dataset, photos, rounds, 1)) == sorted(_stored(dataset, *(a.ravel() for a in regular), 1))
    sample = dataset[0]
    assert sample["pixel_values"].shape == (num_crops, 24, 24, 3) and sample["topk_indices"].shape[0] == num_crops


def test_the_spread_tail_keeps_each_process_on_its_photos_with_distinct_photos_per_batch(data):
    rows, metadata = _rows(data)
    batches = BatchSampler(SequentialSampler(range(PHOTOS)), 2, drop_last=False)
    seen = []
    for rank in (0, 1):
        dataset = SpreadCropDataset(rows, metadata, 2, (24, 24), batch_size=2, rank=rank, world_size=2)
        shard = list(BatchSamplerShard(batches, num_processes=2, process_index=rank, split_batches=False))
        dataset.set_pass(0)
        own = {int(p) for batch in shard for p in dataset.crop_plan(batch)[0].ravel()}
        dataset.set_pass(0, tail=True)
        plans = [dataset.crop_plan(batch)[0].ravel().tolist() for batch in shard]
        assert all(len(set(photos)) == len(photos) for photos in plans)
        assert Counter(p for photos in plans for p in photos) == {p: 2 for p in own}  # once per FKD epoch
        seen.append(own)
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(PHOTOS))


class _Record(TrainerCallback):
    def __init__(self, dataset):
        self.dataset, self.steps = dataset, []

    def on_step_begin(self, args, state, control, **kwargs):
        self.steps.append((self.dataset.pass_index, self.dataset.in_tail))


@pytest.mark.parametrize("layout", ["grouped", "spread"])
def test_training_with_the_tail_counts_fkd_epochs_exactly(data, tmp_path, layout):
    config = FKDConfig(
        label_set=str(data[2]),
        student="test_resnet",
        input_size=32,
        num_crops=2,
        fkd_epochs=6,
        single_crop_tail=True,
        crop_layout=layout,
        spread_lanes=1,
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        learning_rate=0.05,
        optim="sgd",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )
    setup = build_trainer(config)
    assert setup.train_set.layout.name == layout and setup.resolved.layout.single_crop_tail
    trainer, crops = setup.trainer, []
    record = _Record(setup.train_set)
    trainer.add_callback(record)
    compute_loss = trainer.compute_loss

    def recording(model, inputs, *args, **kwargs):
        crops.append(inputs["pixel_values"].shape[0])
        return compute_loss(model, inputs, *args, **kwargs)

    trainer.compute_loss = recording
    trainer.train()
    steps_per_pass = math.ceil(PHOTOS / 2)
    assert trainer.state.max_steps == 3 * steps_per_pass  # the tail is one pass of the same length
    assert record.steps == [(p, p == 2) for p in range(3) for _ in range(steps_per_pass)]
    assert set(crops) == {4}  # 2 samples x 2 crops per step, in the tail too
    logs = [log for log in trainer.state.log_history if "loss" in log]
    assert [log["fkd_epoch"] for log in logs] == [pytest.approx(2 * log["epoch"], abs=1e-3) for log in logs]
    assert logs[-1]["fkd_epoch"] == pytest.approx(6)


def test_a_tail_needs_whole_passes(tmp_path):
    with pytest.raises(ValueError, match="set fkd_epochs to a multiple of num_crops"):
        FKDConfig(output_dir=str(tmp_path), num_crops=4, fkd_epochs=10, single_crop_tail=True)
    assert FKDConfig(output_dir=str(tmp_path), num_crops=4, fkd_epochs=12, single_crop_tail=True).num_train_epochs == 3


class _EvenPhotos(GroupedLayout):
    """A layout of the test: the grouped one on the even photos only (as a process of two would train)."""

    rank = 1

    def pass_photos(self, dataset):
        return np.arange(0, len(dataset), 2)

    def local_samples(self, dataset, indices):
        return np.asarray(indices, dtype=np.int64) % (len(dataset) // 2)


def test_the_tail_is_a_schedule_on_top_of_any_layout(data):
    dataset = FKDCropDataset(*_rows(data), 2, (24, 24), layout=_EvenPhotos())
    dataset.set_pass(0, tail=True)
    photos, rounds = dataset.crop_plan(range(PHOTOS // 2))
    assert Counter(photos.ravel().tolist()) == {p: 2 for p in range(0, PHOTOS, 2)}  # each photo once per FKD epoch
    assert Counter(rounds.ravel().tolist()) == {0: PHOTOS // 2, 1: PHOTOS // 2}
    samples = dataset.__getitems__([0, 1])
    expected = FKDCropDataset(*_rows(data), 2, (24, 24))  # the grouped layout's crops of the same photos
    expected.set_pass(0)
    for sample, sample_photos, sample_rounds in zip(samples, photos[:2], rounds[:2]):
        for crop, photo, round_ in zip(sample["pixel_values"], sample_photos, sample_rounds):
            assert np.array_equal(crop.numpy(), expected[int(photo)]["pixel_values"][round_].numpy())


def test_every_registered_layout_is_a_config_choice_and_the_card_records_it(tmp_path):
    from transformers import TrainerControl, TrainerState

    from fkd_hf.training import FKDConfig, StudentCardCallback

    choices = FKDConfig.__dataclass_fields__["crop_layout"].metadata["choices"]
    assert choices == tuple(LAYOUTS) and all(layout_class(name).name == name for name in LAYOUTS)
    for name, options in (("grouped", {}), ("spread", {"spread_lanes": 3})):
        tail = name == "grouped"
        config = FKDConfig(output_dir=str(tmp_path), crop_layout=name, spread_lanes=3, single_crop_tail=tail)
        plan = plan_layout(config)
        assert (plan.name, dict(plan.options), plan.single_crop_tail) == (name, options, tail)
        callback = StudentCardCallback()  # without a run: the layout the arguments set
        callback.on_train_begin(config, TrainerState(), TrainerControl())
        info = callback.card_data
        assert (info.crop_layout, info.crop_layout_options, info.single_crop_tail) == (name, options, tail)
