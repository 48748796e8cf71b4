"""fkd-hf without the Trainer: the README's plain-PyTorch loop, run as written, and the adapter for timm's train.py."""

from __future__ import annotations

import re

import pytest
import torch
from torch.utils.data import DataLoader

from _fkd_data import make_label_set, make_splits
from conftest import REPO_ROOT

HEADING = "## Your own training loop"


def readme_loop(readme: str) -> str:
    """The first ```python block under HEADING in ``readme``."""
    assert HEADING in readme, f"the README has no section {HEADING!r}"
    section = readme.split(HEADING, 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_loop_is_taken_from_its_readme_section():
    readme = (f"# x\n```python\nfirst = 1\n```\n{HEADING}\n\ntext\n```python\nours = 2\n```\n"
              "## Next\n```python\nx\n```\n")
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
    model = namespace["train_fkd"](str(tiny_label_set), arch="test_resnet", size=32, epochs=2, num_crops=2,
                                   batch_size=4)  # fmt: skip
    torch.manual_seed(0)
    untrained = timm.create_model("test_resnet", num_classes=3)
    changed = [name for name, value in model.state_dict().items()
               if value.dtype.is_floating_point and not torch.equal(value, untrained.state_dict()[name])]  # fmt: skip
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
