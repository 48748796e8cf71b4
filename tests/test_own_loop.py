"""fkd-hf without the Trainer: the README's plain-PyTorch loop, run as written, and the adapter for timm's train.py."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest
import torch
import yaml
from _fkd_data import make_label_set, make_splits
from conftest import IMAGENETTE, REPO_ROOT
from torch.utils.data import DataLoader, DistributedSampler

HEADING = "## Your own training loop"


def readme_blocks(readme: str, language: str = "python") -> list[str]:
    """The ```language blocks under HEADING in ``readme``, in order."""
    assert HEADING in readme, f"the README has no section {HEADING!r}"
    section = readme.split(HEADING, 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def readme_loop(readme: str) -> str:
    """The first ```python block under HEADING in ``readme``."""
    return readme_blocks(readme)[0]


def test_the_loop_is_taken_from_its_readme_section():
    readme = (
        f"# x\n```python\nfirst = 1\n```\n{HEADING}\n\ntext\n```python\nours = 2\n```\n## Next\n```python\nx\n```\n"
    )
    assert readme_loop(readme) == "ours = 2\n"


@pytest.fixture(scope="module")
def tiny_label_set(tmp_path_factory, teacher_dir):
    root = tmp_path_factory.mktemp("own_loop")
    images = make_splits(root / "photos")
    return make_label_set(images / "train", teacher_dir, root / "labels", num_crops=4)


def test_the_readme_loop_trains_a_student_on_the_stored_soft_labels(tiny_label_set):
    import timm

    namespace: dict = {}
    exec(compile(readme_loop((REPO_ROOT / "README.md").read_text()), "README.md", "exec"), namespace)
    torch.manual_seed(0)
    model = namespace["train_fkd"](
        str(tiny_label_set), arch="test_resnet", size=32, epochs=2, num_crops=2, batch_size=4
    )
    torch.manual_seed(0)
    untrained = timm.create_model("test_resnet", num_classes=3)
    changed = [
        name
        for name, value in model.state_dict().items()
        if value.dtype.is_floating_point and not torch.equal(value, untrained.state_dict()[name])
    ]
    assert "fc.weight" in changed and len(changed) > 10
    assert all(torch.isfinite(value).all() for value in model.state_dict().values() if value.dtype.is_floating_point)


def test_timm_style_loader_yields_normalised_crops_and_dense_targets_one_pass_per_epoch(tiny_label_set):
    import timm.loss

    from fkd_hf.labels import join_labels, load_images, load_label_set, reconstruct
    from fkd_hf.models import normalize
    from fkd_hf.training import FKDCropDataset, collate_crops, soft_cross_entropy
    from fkd_hf.training.timm_adapter import SoftTargetLoader

    labels = load_label_set(tiny_label_set)
    meta = labels.metadata
    images = load_images(meta.dataset, split=meta.dataset_split, label_column=None)
    train_set = FKDCropDataset(join_labels(images, labels), meta, num_crops=2, size=(32, 32))
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    loader = SoftTargetLoader(DataLoader(train_set, 4, collate_fn=collate_crops), mean, std)
    assert len(loader) == 3  # 12 images, 4 per batch

    passes = [list(loader), list(loader)]
    for pass_index, batches in enumerate(passes):
        train_set.set_pass(pass_index)
        for (pixels, targets), batch in zip(batches, DataLoader(train_set, 4, collate_fn=collate_crops)):
            torch.testing.assert_close(pixels, normalize(batch["pixel_values"], mean, std))
            torch.testing.assert_close(targets, reconstruct(batch["topk_indices"], batch["topk_values"], meta.kind, 3))
            assert pixels.shape == (8, 3, 32, 32) and targets.shape == (8, 3)
    assert not torch.equal(passes[0][0][0], passes[1][0][0])  # every pass replays other stored crops
    loader.sampler.set_epoch(0)  # what timm's train.py calls in distributed runs
    torch.testing.assert_close(next(iter(loader))[0], passes[0][0][0])

    logits = torch.randn(8, 3)
    targets = passes[0][0][1]
    expected = soft_cross_entropy(logits, targets)
    torch.testing.assert_close(torch.nn.CrossEntropyLoss()(logits, targets), expected)  # timm's loss, no mixup
    torch.testing.assert_close(timm.loss.SoftTargetCrossEntropy()(logits, targets), expected)


# What timm's train.py does with its loader_train (not its code): the epoch loop sets the epoch on
# `loader.batch_sampler` and `loader.sampler` where they have `set_epoch` (timm's main branch, every epoch; its
# `_set_loader_epoch` reads the attributes directly) or on `loader.sampler` in distributed runs only (timm 1.0.28);
# `len(loader)` sizes the LR schedule and the gradient-accumulation arithmetic; `train_one_epoch` iterates
# `(input, target)` pairs and moves both to the device (`--no-prefetcher`), channels-last with `--channels-last`.
EPOCH_SETTERS = {
    "main": lambda loader, epoch: [
        sampler.set_epoch(epoch) for sampler in (loader.batch_sampler, loader.sampler) if hasattr(sampler, "set_epoch")
    ],
    "1.0.28, distributed": lambda loader, epoch: (
        hasattr(loader.sampler, "set_epoch") and loader.sampler.set_epoch(epoch)
    ),
    "1.0.28, one process": lambda loader, epoch: None,
}


def timm_train_epochs(loader, epochs: range, set_epoch, grad_accum_steps: int = 2) -> dict[int, list]:
    """Drives ``loader`` as timm's train.py drives ``loader_train``; returns each epoch's ``(input, target)`` pairs
    and the training set's pass while they were read."""
    updates_per_epoch = (len(loader) + grad_accum_steps - 1) // grad_accum_steps
    assert updates_per_epoch >= 1 and len(loader.dataset) > 0
    seen = {}
    for epoch in epochs:
        set_epoch(loader, epoch)
        pairs = []
        for input, target in loader:
            input, target = input.to(torch.device("cpu")), target.to(torch.device("cpu"))
            input = input.contiguous(memory_format=torch.channels_last)
            pairs.append((input, target, loader.dataset.pass_index))
        assert len(pairs) == len(loader)  # train.py's last_batch test needs len(loader) batches
        seen[epoch] = pairs
    return seen


def _expected_pairs(train_set, loader, epoch: int, mean, std) -> list:
    """The epoch's batches read straight from the dataset, in the order of the loader's DistributedSampler for that
    epoch."""
    from fkd_hf.labels import reconstruct
    from fkd_hf.models import normalize
    from fkd_hf.training import collate_crops

    meta = train_set.metadata
    train_set.set_pass(epoch)
    loader.loader.sampler.set_epoch(epoch)  # the DistributedSampler's order of the epoch
    pairs = []
    for indices in loader.batch_sampler:
        batch = collate_crops(train_set.__getitems__(indices))
        pixels = normalize(batch["pixel_values"], mean, std)
        pairs.append((pixels, reconstruct(batch["topk_indices"], batch["topk_values"], meta.kind, meta.num_classes)))
    return pairs


@pytest.mark.parametrize("timm_version", sorted(EPOCH_SETTERS))
def test_timm_train_drives_the_loader_through_everything_it_reads_and_a_resumed_run_replays_its_epoch(
    tiny_label_set, timm_version
):
    from fkd_hf.labels import join_labels, load_images, load_label_set
    from fkd_hf.training import FKDCropDataset, SoftTargetLoader, collate_crops

    labels = load_label_set(tiny_label_set)
    meta = labels.metadata
    images = load_images(meta.dataset, split=meta.dataset_split, label_column=None)
    train_set = FKDCropDataset(join_labels(images, labels), meta, num_crops=2, size=(32, 32))
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)

    def loader_train():  # as the README builds it, with the DistributedSampler of a distributed run (one rank)
        sampler = DistributedSampler(train_set, num_replicas=1, rank=0, seed=3)
        return SoftTargetLoader(DataLoader(train_set, 5, sampler=sampler, collate_fn=collate_crops), mean, std)

    set_epoch = EPOCH_SETTERS[timm_version]
    loader = loader_train()
    assert len(loader) == 3 and loader.dataset is train_set and len(loader.sampler) == 12  # 12 images, 5 a batch
    assert len(loader.batch_sampler) == 3 and loader.batch_sampler.batch_size == 5
    run = timm_train_epochs(loader, range(3), set_epoch)
    for epoch, pairs in run.items():
        assert [p[2] for p in pairs] == [epoch] * 3  # epoch e replays pass e's crops
        if timm_version != "1.0.28, one process":
            for (pixels, targets, _), expected in zip(pairs, _expected_pairs(train_set, loader, epoch, mean, std)):
                torch.testing.assert_close(pixels, expected[0])
                torch.testing.assert_close(targets, expected[1])
    assert [p[0].shape for p in run[0]] == [(10, 3, 32, 32)] * 2 + [(4, 3, 32, 32)]  # images x 2 crops each
    assert [p[1].shape for p in run[0]] == [(10, 3)] * 2 + [(4, 3)]
    assert not torch.equal(run[0][0][0], run[1][0][0])

    if timm_version != "1.0.28, one process":  # --resume: a fresh loader started at epoch 2 replays epoch 2
        resumed = timm_train_epochs(loader_train(), range(2, 3), set_epoch)[2]
        for (pixels, targets, pass_index), (same_pixels, same_targets, _) in zip(resumed, run[2]):
            assert pass_index == 2
            torch.testing.assert_close(pixels, same_pixels)
            torch.testing.assert_close(targets, same_targets)


def test_set_epoch_on_either_sampler_of_a_shuffling_loader_sets_the_pass(tiny_label_set):
    from fkd_hf.labels import join_labels, load_images, load_label_set
    from fkd_hf.training import FKDCropDataset, SoftTargetLoader, collate_crops

    labels = load_label_set(tiny_label_set)
    images = load_images(labels.metadata.dataset, split=labels.metadata.dataset_split, label_column=None)
    train_set = FKDCropDataset(join_labels(images, labels), labels.metadata, num_crops=2, size=(32, 32))
    loader = SoftTargetLoader(DataLoader(train_set, 4, shuffle=True, collate_fn=collate_crops), (0.5,) * 3, (0.5,) * 3)
    assert sorted(loader.sampler) == list(range(12))  # the wrapped RandomSampler, read through
    assert sorted(i for batch in loader.batch_sampler for i in batch) == list(range(12))
    loader.batch_sampler.set_epoch(5)
    next(iter(loader))
    assert train_set.pass_index == 5
    loader.sampler.set_epoch(2)
    next(iter(loader))
    assert train_set.pass_index == 2
    next(iter(loader))  # without set_epoch, each iteration is the next pass
    assert train_set.pass_index == 3


TIMM_COMMAND_NEEDS = ("--data-dir", "--num-classes", "--fkd-labels", "--fkd-num-crops", "--device", "--no-prefetcher")


def _readme_timm_lines() -> tuple[str, str, list[str]]:
    """The README's lines for timm's train.py: its added arguments, its loader_train, its command's arguments."""
    blocks = readme_blocks((REPO_ROOT / "README.md").read_text())
    arguments = next(block for block in blocks if "parser.add_argument" in block)
    loader = next(block for block in blocks if "loader_train =" in block)
    (command,) = readme_blocks((REPO_ROOT / "README.md").read_text(), "bash")
    words = shlex.split(command)
    assert words[:2] == ["python", "train.py"]
    return arguments, loader, words[2:]


def test_the_readme_train_py_command_sets_what_the_script_needs_for_the_recipe_label_set():
    _, _, argv = _readme_timm_lines()
    options = dict(zip(argv, argv[1:]))
    assert all(flag in argv for flag in TIMM_COMMAND_NEEDS)
    assert [options[f"--{name}"] for name in ("mixup", "cutmix", "smoothing")] == ["0", "0", "0"]
    recipe = yaml.safe_load((REPO_ROOT / "recipes" / "generate_imagenette_cpu.yaml").read_text())
    assert options["--fkd-labels"] == recipe["output_dir"]
    # train.py evaluates on the val/ folder of the photos that the README's recipe command labelled
    recipe_command = f"--config recipes/generate_imagenette_cpu.yaml --dataset imagefolder:{options['--data-dir']}"
    assert recipe_command in (REPO_ROOT / "README.md").read_text()


@pytest.mark.skipif(not IMAGENETTE.is_dir(), reason="counts the classes of ../shared/data/imagenette-mini")
def test_the_readme_train_py_command_has_the_class_count_of_its_data():
    _, _, argv = _readme_timm_lines()
    classes = [path for path in (IMAGENETTE / "train").iterdir() if path.is_dir()]
    assert int(dict(zip(argv, argv[1:]))["--num-classes"]) == len(classes)


def test_the_readme_train_py_lines_as_written_give_a_loader_that_train_py_drives(tiny_label_set, tmp_path, monkeypatch):
    arguments, loader_lines, argv = _readme_timm_lines()
    parser = argparse.ArgumentParser()  # stand-ins for the two train.py options the replaced lines read
    parser.add_argument("-b", "--batch-size", type=int, default=128)
    parser.add_argument("-j", "--workers", type=int, default=4)
    exec(compile(arguments, "README.md", "exec"), {"parser": parser})
    args, _ = parser.parse_known_args(argv)
    args.distributed = False
    label_set = tmp_path / args.fkd_labels
    label_set.parent.mkdir(parents=True)
    label_set.symlink_to(tiny_label_set)  # the tiny set where the command's label set would be
    monkeypatch.chdir(tmp_path)
    data_config = {"input_size": (3, 32, 32), "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    namespace = {"args": args, "data_config": data_config, "device": torch.device("cpu"), "torch": torch}
    exec(compile(loader_lines, "README.md", "exec"), namespace)
    loader_train = namespace["loader_train"]
    assert loader_train.dataset.num_crops == args.fkd_num_crops == 4
    assert loader_train.loader.num_workers == args.workers and len(loader_train) == 1  # 12 images, --batch-size 32
    run = timm_train_epochs(loader_train, range(2), EPOCH_SETTERS["main"])
    for epoch, [(pixels, targets, pass_index)] in run.items():
        assert pass_index == epoch and pixels.shape == (48, 3, 32, 32) and targets.shape == (48, 3)
        torch.testing.assert_close(targets.sum(1), torch.ones(48))
