"""The README's self-supervised commands, run as written (plus small sizes appended) on tiny DINOv2 and CLIP models
made in the test under the Hub ids the commands name, and its Python snippet on the student they train."""

from __future__ import annotations

import shlex

import torch
from conftest import make_image_folder
from test_readme import _blocks, _commands, _fkd_hf_argv

from fkd_hf.cli import main

TINY = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
# What the test appends to each command: sizes that fit the tiny models and a fast run.
SMALL = {
    "generate": ["--input_size", "32", "--stored_crops", "2", "--num_workers", "0"],
    "train": [
        *("--input_size", "32", "--fkd_epochs", "4", "--num_crops", "2", "--per_device_train_batch_size", "6"),
        *("--dataloader_num_workers", "0", "--save_strategy", "no", "--report_to", "none", "--use_cpu", "true"),
    ],
}


def _tiny_encoders(root) -> None:
    """Randomly initialised DINOv2 and CLIP models saved where the README's Hub ids point, as local folders."""
    from transformers import CLIPConfig, CLIPModel, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(**TINY, image_size=32, patch_size=8)).save_pretrained(root / "facebook/dinov2-small")
    text = {**TINY, "vocab_size": 99, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    clip = CLIPModel(CLIPConfig(text_config=text, vision_config={**TINY, "image_size": 32, "patch_size": 8}))
    clip.save_pretrained(root / "openai/clip-vit-base-patch32")


def test_the_readme_self_supervised_commands_and_snippet(tmp_path, monkeypatch):
    section = [c for c in _commands() if "--target_type" in c or "--projection_head" in c]
    assert len(section) == 3
    photos = tmp_path / "photos"
    make_image_folder(photos / "train", per_class=6)
    make_image_folder(photos / "val", per_class=3, seed=1)
    _tiny_encoders(tmp_path)
    monkeypatch.chdir(tmp_path)
    for command in section:
        argv = _fkd_hf_argv(command.replace("$IMAGENETTE", str(photos)))
        assert main([*argv, *SMALL[argv[0]]]) == 0, shlex.join(argv)
    results = (tmp_path / "outputs/resnet18-from-dinov2/all_results.json").read_text()
    assert '"eval_knn_top1"' in results and '"eval_probe_top1"' in results
    snippet = next(block for block in _blocks("python") if "load_projection_head" in block)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert namespace["features"].shape == (1, 512) and namespace["student_embedding"].shape == (1, 16)
