"""The spread crop layout: every stored crop once per cycle, distinct photos per batch, one decode per photo and
pass, independent of workers, resumable, partitioned over processes, bounded memory; trained and resumed."""

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from _fkd_data import make_label_set, make_splits
from accelerate.data_loader import BatchSamplerShard, SkipBatchSampler
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

import fkd_hf.training.data as data_module
from fkd_hf import FKDConfig
from fkd_hf.labels.attach import join_labels
from fkd_hf.labels.crops import crops_to_pixels, replay_crop
from fkd_hf.labels.format import load_label_set
from fkd_hf.labels.images import decode_image, image_bytes, load_images
from fkd_hf.training.builder import build_trainer
from fkd_hf.training.data import FKDCropDataset, collate_crops, select_crops
from fkd_hf.training.layouts import plan_layout
from fkd_hf.training.layouts.spread import SpreadCropDataset, SpreadLayout, SpreadSteps, lanes_for_memory

STORED = 4  # crops per image in the label set
PHOTOS = 12


@pytest.fixture(scope="module")
def data(tmp_path_factory, teacher_dir):
    root = tmp_path_factory.mktemp("spread")
    images = make_splits(root / "images")
    labels = make_label_set(images, teacher_dir, root / "labels", num_crops=STORED, replay="pil")  # vs replay_crop
    return load_images(f"imagefolder:{images}", split="train"), load_label_set(labels), labels


def _dataset(data, num_crops=2, batch_size=2, **kwargs):
    images, labels, _ = data
    rows = join_labels(images, labels)
    return SpreadCropDataset(rows, labels.metadata, num_crops, (24, 24), batch_size=batch_size, **kwargs)


def _batches(dataset, sampler=None):
    batch_size = dataset.layout.batch_size
    sampler = sampler or BatchSampler(SequentialSampler(range(len(dataset))), batch_size, drop_last=False)
    return [list(batch) for batch in sampler]


def _stored_crops(dataset, batch):
    """(row, stored crop) of every crop the samples of ``batch`` replay."""
    photos, rounds = dataset.crop_plan(batch)
    rows = dataset.row_ids[photos.ravel()]
    pass_index, m = dataset.pass_index, dataset.num_crops
    return [(row, select_crops(dataset.seed, row, pass_index, STORED, m)[r]) for row, r in zip(rows, rounds.ravel())]


@pytest.fixture
def decodes(monkeypatch):
    """Counts image decodes per loader worker (forked workers share the counts; the last slot is this process)."""
    counts = torch.zeros(8, dtype=torch.int64).share_memory_()

    real_decode = data_module.decode_for_replay

    def counting_decode(data, replay):
        info = torch.utils.data.get_worker_info()
        counts[-1 if info is None else info.id] += 1
        return real_decode(data, replay)

    monkeypatch.setattr(data_module, "decode_for_replay", counting_decode)
    return counts


@pytest.mark.parametrize("batch_size, num_crops, lanes", [(1, 2, 8), (2, 2, 3), (3, 2, 8), (1, 4, 2)])
def test_every_stored_crop_is_used_once_per_cycle(data, batch_size, num_crops, lanes):
    dataset = _dataset(data, num_crops, batch_size, lanes=lanes)
    used = []
    for pass_index in range(STORED // num_crops):
        dataset.set_pass(pass_index)
        used += [crop for batch in _batches(dataset) for crop in _stored_crops(dataset, batch)]
    assert sorted(used) == [(row, crop) for row in range(PHOTOS) for crop in range(STORED)]


@pytest.mark.parametrize("batch_size, num_crops", [(1, 2), (2, 2), (3, 2), (1, 4), (1, 3), (2, 3)])
def test_a_batch_holds_as_many_photos_as_crops(data, batch_size, num_crops):
    assert batch_size * num_crops <= PHOTOS // 2
    dataset = _dataset(data, num_crops, batch_size)
    for batch in _batches(dataset):
        photos = dataset.crop_plan(batch)[0].ravel()
        assert len(set(photos.tolist())) >= 0.9 * len(photos)


@pytest.mark.parametrize("photos, lanes", [(1000, 8), (1000, 3), (70, 8)])
def test_large_passes_place_each_crop_once_in_distinct_photo_steps(photos, lanes):
    layout = SpreadSteps(num_photos=photos, batch_size=8, num_crops=4, lanes=lanes, seed=3)
    steps = [layout.step(s) for s in range(-(-photos // 8))]
    assert layout.rest == photos % 32 and len(steps) - layout.rest_step <= 4  # the rest: fewer than 32 photos
    for s, (step_photos, rounds) in enumerate(steps):
        distinct = len(set(step_photos.tolist()))
        assert distinct == (len(step_photos) if s < layout.rest_step else min(layout.rest, len(step_photos)))
        assert np.array_equal(layout.round_steps(step_photos)[np.arange(len(rounds)), rounds], np.full(len(rounds), s))
    placed = Counter((p, r) for step_photos, rounds in steps for p, r in zip(step_photos.tolist(), rounds.tolist()))
    assert set(placed.values()) == {1} and len(placed) == 4 * photos


def test_samples_replay_the_stored_crops_with_their_labels(data):
    images, labels, _ = data
    dataset = _dataset(data, lanes=3)
    dataset.set_pass(1)
    for batch in _batches(dataset):
        photos, rounds = dataset.crop_plan(batch)
        samples = dataset.__getitems__(batch)
        for sample, sample_photos, sample_rounds in zip(samples, photos, rounds):
            for j, (photo, round_) in enumerate(zip(sample_photos, sample_rounds)):
                crop = select_crops(0, photo, 1, STORED, 2)[round_]
                row = labels.dataset[int(photo)]
                image = decode_image(image_bytes(images.dataset[int(photo)]["image"]))
                box = crops_to_pixels(np.asarray(row["crops"])[[crop]], image.height, image.width)[0]
                expected = np.asarray(replay_crop(image, box, row["flips"][crop], (24, 24)))
                assert np.array_equal(sample["pixel_values"][j].numpy(), expected)
                assert np.array_equal(sample["topk_indices"][j].numpy(), np.asarray(row["topk_indices"])[crop])


def test_each_photo_is_decoded_once_per_pass_and_memory_stays_bounded(data, decodes):
    dataset = _dataset(data, lanes=3)
    assert dataset.layout.steps(dataset).max_cached_crops == 3 * 4 * 1  # lanes x crops per step x (m - 1)
    for pass_index in range(2):
        dataset.set_pass(pass_index)
        waiting = []
        for batch in _batches(dataset):
            dataset.__getitems__(batch)
            waiting.append(dataset.layout.cached_crops)
        assert int(decodes.sum()) == PHOTOS * (pass_index + 1)
        assert max(waiting) == dataset.layout.steps(dataset).max_cached_crops and waiting[-1] == 0


def _passes(dataset, passes=2, **loader_args):
    loader = DataLoader(
        dataset,
        batch_size=dataset.layout.batch_size,
        sampler=SequentialSampler(dataset),
        collate_fn=collate_crops,
        **loader_args,
    )
    out = []
    for pass_index in range(passes):
        dataset.set_pass(pass_index)
        out.append([batch["pixel_values"] for batch in loader])
    return out


@pytest.mark.parametrize("batch_size, lanes, once", [(3, 2, True), (1, 3, False)])
def test_order_does_not_depend_on_workers_and_dividing_workers_decode_once(data, decodes, batch_size, lanes, once):
    dataset = _dataset(data, batch_size=batch_size, lanes=lanes)
    inline = _passes(dataset)
    decodes.zero_()
    workers = _passes(dataset, num_workers=2, persistent_workers=True)
    for expected, got in zip(inline, workers):
        assert len(expected) == len(got) and all(torch.equal(a, b) for a, b in zip(expected, got))
    assert int(decodes[-1]) == 0 and int(decodes[0]) > 0 and int(decodes[1]) > 0  # both workers decoded
    assert (int(decodes.sum()) == 2 * PHOTOS) == once  # 2 workers share 2 lanes; 3 lanes would need 1 or 3


def test_resume_mid_pass_gives_the_same_batches_without_decoding_the_skipped_ones(data, decodes):
    dataset = _dataset(data, lanes=3)
    dataset.set_pass(1)
    full = [dataset.__getitems__(batch) for batch in _batches(dataset)]
    resumed = _dataset(data, lanes=3)
    resumed.set_pass(1)
    decodes.zero_()
    skip = SkipBatchSampler(BatchSampler(SequentialSampler(range(PHOTOS)), 2, drop_last=False), skip_batches=4)
    rest = [resumed.__getitems__(batch) for batch in _batches(resumed, skip)]
    assert len(rest) == 2
    for expected, got in zip(full[4:], rest):
        assert all(torch.equal(a["pixel_values"], b["pixel_values"]) for a, b in zip(expected, got))
    needed = {int(p) for batch in _batches(resumed, skip) for p in resumed.crop_plan(batch)[0].ravel()}
    assert int(decodes.sum()) == len(needed) < PHOTOS


@pytest.mark.parametrize("batch_size", [2, 4])
def test_two_processes_train_on_disjoint_photos(data, batch_size):
    ranks = [_dataset(data, batch_size=batch_size, lanes=2, rank=r, world_size=2) for r in (0, 1)]
    batches = BatchSampler(SequentialSampler(range(PHOTOS)), batch_size, drop_last=False)
    photos = []
    for rank, dataset in enumerate(ranks):
        dataset.set_pass(0)
        shard = BatchSamplerShard(batches, num_processes=2, process_index=rank, split_batches=False)
        photos.append({int(p) for batch in shard for p in dataset.crop_plan(batch)[0].ravel()})
    assert not photos[0] & photos[1] and photos[0] | photos[1] == set(range(PHOTOS))


def test_layout_and_options_are_checked_when_the_config_is_made(tmp_path):
    with pytest.raises(ValueError, match="crop_layout must be one of grouped, spread"):
        FKDConfig(output_dir=str(tmp_path), crop_layout="mixed")
    with pytest.raises(ValueError, match="turn off .*split_batches"):
        FKDConfig(
            output_dir=str(tmp_path), crop_layout="spread", accelerator_config={"split_batches": True}, use_cpu=True
        )
    with pytest.raises(ValueError, match="spread_lanes must be at least 1"):
        FKDConfig(output_dir=str(tmp_path), crop_layout="spread", spread_lanes=0)
    grouped = FKDConfig(output_dir=str(tmp_path), crop_layout="grouped", accelerator_config={"split_batches": True})
    assert grouped.accelerator_config.split_batches  # the grouped layout works with whole batches split


def _config(labels, output_dir, **overrides) -> FKDConfig:
    options = dict(
        label_set=str(labels),
        student="test_resnet",
        input_size=32,
        num_crops=2,
        crop_layout="spread",
        spread_lanes=2,
        output_dir=str(output_dir),
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
    return FKDConfig(**{**options, **overrides})


def test_training_resumes_mid_pass_to_the_same_loss(data, tmp_path):
    def run(output_dir, resume=None):
        config = _config(data[2], output_dir, max_steps=8, save_strategy="steps", save_steps=1, mixup_alpha=0.4)
        setup = build_trainer(config)
        assert isinstance(setup.train_set.layout, SpreadLayout) and setup.train_set.layout.lanes == 2
        assert isinstance(setup.trainer._get_train_sampler(), SequentialSampler)  # the layout orders the samples
        setup.trainer.train(resume_from_checkpoint=resume)
        state = json.loads((output_dir / "checkpoint-8" / "trainer_state.json").read_text())
        return next(log["loss"] for log in state["log_history"] if log.get("step") == 8 and "loss" in log)

    first = run(tmp_path / "a")
    assert run(tmp_path / "b", resume=str(tmp_path / "a" / "checkpoint-7")) == pytest.approx(first, rel=1e-6)


def test_train_leaves_the_config_as_given_and_its_card_records_the_layout_lanes_and_tail(data, tmp_path):
    from fkd_hf.training import train

    config = _config(
        data[2],
        tmp_path / "out",
        fkd_epochs=2,
        single_crop_tail=True,
        eval_split="none",
        hub_token="hf_notWrittenAnywhere",
    )
    given = config.to_dict()
    train(config)
    assert config.to_dict() == given and config.input_size == 32 and config.mean is None and config.dataset is None
    info = json.loads((tmp_path / "out" / "fkd_student.json").read_text())
    layout = (info["crop_layout"], info["crop_layout_options"], info["single_crop_tail"])
    assert layout == ("spread", {"spread_lanes": 2}, True)
    assert info["input_size"] == [32, 32] and info["eval_dataset"] == f"imagefolder:{data[2].parent / 'images'}"
    card = (tmp_path / "out" / "README.md").read_text()
    assert re.search(r"crop layout\W+spread", card) and re.search(r"spread_lanes\W+2", card)
    saved = yaml.safe_load((tmp_path / "out" / "train_config.yaml").read_text())  # the resolved values
    student = json.loads((tmp_path / "out" / "config.json").read_text())["pretrained_cfg"]
    assert saved["dataset"] == info["eval_dataset"] and saved["mean"] == student["mean"] and saved["input_size"] == 32
    assert saved["train_split"] == "train" and saved["eval_split"] == "" and "hub_token" not in saved


@pytest.mark.distributed
def test_two_process_training_gives_each_process_its_own_photos(data, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        __file__,
        str(data[2]),
        str(tmp_path),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for pass_index in (0, 1):
        crops = [Counter(c for p, plan in rank if p == pass_index for c in map(tuple, plan)) for rank in ranks]
        photos = [{photo for photo, _ in rank_crops} for rank_crops in crops]
        assert not photos[0] & photos[1] and photos[0] | photos[1] == set(range(PHOTOS))
        assert all(
            set(rank_crops.values()) == {1} and len(rank_crops) == 2 * len(own)
            for rank_crops, own in zip(crops, photos)
        )


def _record_two_process_training(labels: str, output_dir: str) -> None:
    """torchrun target of the test above: trains 2 passes and writes each process's (pass, [(photo, round)])."""
    seen, read = [], FKDCropDataset.__getitems__

    def recording(self, indices):
        photos, rounds = self.crop_plan(indices)
        seen.append((self.pass_index, list(zip(photos.ravel().tolist(), rounds.ravel().tolist()))))
        return read(self, indices)

    FKDCropDataset.__getitems__ = recording
    config = _config(labels, output_dir, fkd_epochs=4)
    try:
        build_trainer(config).trainer.train()
        Path(output_dir, f"rank{config.process_index}.json").write_text(json.dumps(seen))
    finally:  # as `fkd-hf` does: an open process group can abort the interpreter's exit
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    _record_two_process_training(*sys.argv[1:])


@pytest.mark.parametrize(
    "memory, batch, crops, size, workers, lanes",
    [
        (2.0, 32, 4, 224, 4, 36),  # FKD's -b 1024 on 8 GPUs: 55 MiB a lane, 37 fit, a multiple of 4 workers
        (2.0, 64, 4, 224, 4, 16),  # 110 MiB a lane: 18 fit, 16 with 4 workers
        (2.0, 64, 4, 224, 1, 18),
        (2.0, 16, 4, 96, 4, 64),  # small crops: the cap
        (0.01, 32, 4, 224, 4, 1),  # less than one lane fits: one lane
        (2.0, 32, 1, 224, 4, 64),  # one crop per photo waits for nothing
    ],
)
def test_spread_lanes_are_sized_from_the_memory_budget(memory, batch, crops, size, workers, lanes):
    config = FKDConfig(
        output_dir="out",
        spread_memory=memory,
        per_device_train_batch_size=batch,
        num_crops=crops,
        dataloader_num_workers=workers,
    )
    assert lanes_for_memory(memory, batch, crops, (size, size), workers) == lanes
    plan = plan_layout(config, (size, size))
    assert plan.options == {"spread_lanes": lanes, "spread_memory": memory}
    waiting = lanes * batch * crops * (crops - 1) * 3 * size * size  # bytes of crops waiting at the peak
    assert lanes == 1 or waiting <= memory * 2**30
    assert plan_layout(FKDConfig(output_dir="out", spread_lanes=5), (size, size)).options == {"spread_lanes": 5}


def test_spread_memory_must_be_a_positive_budget(tmp_path):
    for memory in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="spread_memory must be a positive number of GiB"):
            FKDConfig(output_dir=str(tmp_path), spread_memory=memory)
