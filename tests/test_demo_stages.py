"""The demo's stages on the library's one path: its training stage trains exactly as ``fkd-hf train``; its console
output and card say what it wrote and measured.

    python -m pytest -q tests/test_demo_stages.py    # tiny data and models, under a minute
"""

import importlib.util
import json

import numpy as np
import pytest
from _fkd_data import TINY_CLASSES, make_splits

from fkd_hf.cli import main as cli_main
from fkd_hf.demo import DemoConfig
from fkd_hf.demo.output import CURVES_FILE, OUTPUTS, RESULT_FILE
from fkd_hf.repo_ids import portable_spec

TINY = dict(student="test_resnet", input_size=32, stored_crops=4, num_crops=2, batch_size=5, num_workers=0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and lose much on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return make_splits(tmp_path_factory.mktemp("demo_stages") / "images", train_per_class=4, val_per_class=2)


def test_demo_training_stage_trains_bit_for_bit_as_fkd_hf_train(splits, teacher_dir, tmp_path):
    """The same label set, seed and settings: the demo's student and `fkd-hf train`'s have identical weights, though
    the demo evaluates on its cached set after every step and `fkd-hf train` on the eval split it loads."""
    from safetensors.torch import load_file
    from transformers import set_seed

    from fkd_hf.demo.data import label_map, prepare_data
    from fkd_hf.demo.eval_set import eval_images
    from fkd_hf.demo.labels import generate_labels
    from fkd_hf.demo.train_stage import fkd_config, train_student
    from fkd_hf.models import create_student
    from fkd_hf.training import train

    config = DemoConfig(dataset=f"imagefolder:{splits}", teacher=str(teacher_dir), fkd_epochs=4, **TINY).resolved()
    data = prepare_data(config)
    labels_dir = generate_labels(config, data, tmp_path / "labels", config.stored_crops, config.seed, 3).output_dir
    source = data.eval_source()
    classes = label_map(source, data.train.label_names, np.arange(len(TINY_CLASSES)))
    eval_set = eval_images(source, classes, (32, 32), 0.875, "bilinear", 0, "eval")
    run = train_student("fkd", config, labels_dir, data, eval_set, None, tmp_path / "work", save_to=tmp_path / "demo")
    assert run.steps == 6 and len([log for log in run.log_history if "eval_top1" in log]) >= 6  # 2 passes x 3 steps
    train(fkd_config(config, tmp_path / "train", labels_dir, data, num_rows=data.train.num_rows))

    demo, trained = (
        load_file(tmp_path / "demo" / "model.safetensors"),
        load_file(tmp_path / "train" / "model.safetensors"),
    )
    assert demo.keys() == trained.keys()
    assert all(demo[name].equal(trained[name]) for name in demo)
    set_seed(config.seed)
    initial = create_student(config.student, TINY_CLASSES).timm_model.state_dict()
    assert any(not demo[name].equal(initial[name]) for name in demo if demo[name].is_floating_point())  # it trained


def test_console_names_the_final_outputs_only_and_the_card_carries_the_scores(splits, teacher_dir, tmp_path, capfd):
    from huggingface_hub import ModelCard

    output = tmp_path / "demo"
    argv = [f"--{key}={value}" for key, value in {**TINY, "fkd_epochs": 2}.items()]
    assert (
        cli_main(
            [
                "demo",
                "--dataset",
                f"imagefolder:{splits}",
                "--teacher",
                str(teacher_dir),
                "--output_dir",
                str(output),
                *argv,
            ]
        )
        == 0
    )
    out, err = capfd.readouterr()
    assert ".partial-" not in out + err  # the hidden folder the result is built in is never named
    assert "\x1b[A" not in err and any(line.startswith("train: 100% ") for line in err.splitlines())  # a log file
    expected = {name for name in OUTPUTS if name != CURVES_FILE or importlib.util.find_spec("matplotlib")}
    assert {path.name for path in output.iterdir()} == expected
    for name in OUTPUTS:  # the printed summary lists every output at its final path
        assert f"`{output / name}`" in out
    assert f"Label set in {output / 'labels'}:" in out
    # The student's card: the top-1 the demo measured in the model-index and the table, the agreement beside it.
    result = json.loads((output / RESULT_FILE).read_text())
    fkd = result["runs"]["fkd"]
    card = ModelCard.load(output / "student" / "README.md")
    assert card.data.eval_results[0].metric_value == pytest.approx(fkd["top1"], abs=1e-6)
    evaluation = card.text.split("## Evaluation", 1)[1].split("\n## ", 1)[0]
    assert "Not evaluated" not in evaluation and f"{100 * fkd['top1']:.2f} %" in evaluation
    # the card names a local teacher folder by its name only: no local absolute path reaches what gets pushed
    teacher = portable_spec(result["teacher_name"])
    agreement = f"{100 * fkd['agreement']:.1f} %"
    images = result["eval_items"]
    assert f"agreement with the teacher `{teacher}` on the same {images} images: {agreement}" in evaluation
