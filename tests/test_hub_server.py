"""The fake Hub of `hub_server.py` against the real huggingface_hub, datasets, timm and transformers clients.

The clients read `HF_ENDPOINT` when they are imported, so each scenario runs in a fresh interpreter
(`python tests/test_hub_server.py <scenario>`) whose environment points at this module's `FakeHub`; the scenario
asserts what the clients see, the test asserts what the server saw.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_same_logits
from hub_server import FakeHub


@pytest.fixture(scope="module")
def hub():
    server = FakeHub().start()
    yield server
    server.stop()


def run_scenario(hub: FakeHub, tmp_path: Path, name: str) -> list[dict]:
    """Run `scenario_<name>` in a child process against `hub`; return the requests it made."""
    start = len(hub.requests_log)
    env = {**os.environ, **hub.environment(str(tmp_path / "hf_home"))}
    command = [sys.executable, __file__, name]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"scenario {name} failed:\n{result.stdout}\n{result.stderr}"
    requests = hub.requests_log[start:]
    assert [r for r in requests if r["route"] is None] == [], "the clients called routes FakeHub does not serve"
    return requests


def routes(requests: list[dict]) -> set[str]:
    return {r["route"] for r in requests}


def test_clients_use_the_fake_endpoint(hub, tmp_path):
    requests = run_scenario(hub, tmp_path, "endpoint")
    assert routes(requests) == {"whoami"}


def test_upload_download_and_update_in_place(hub, tmp_path):
    requests = run_scenario(hub, tmp_path, "model_files")
    assert {
        "create_repo",
        "preupload",
        "lfs_batch",
        "lfs_upload",
        "commit",
        "validate_yaml",
        "resolve",
        "tree",
        "paths_info",
        "refs",
        "repo_info",
        "delete_repo",
    } <= routes(requests)
    assert ("model", "user/files") not in hub.repos


def test_private_repo_needs_the_token(hub, tmp_path):
    requests = run_scenario(hub, tmp_path, "private")
    assert {r["status"] for r in requests if r["route"] in ("resolve", "repo_info")} >= {200, 401}
    assert hub.repos[("model", "user/private")].private


def test_datasets_round_trip_and_streaming(hub, tmp_path):
    requests = run_scenario(hub, tmp_path, "datasets")
    assert any(r["status"] == 206 for r in requests), "streaming should read with Range requests"


def test_timm_hf_hub_model(hub, tmp_path):
    run_scenario(hub, tmp_path, "timm")
    assert "model.safetensors" in hub.repos[("model", "user/tiny-timm")].resolve("main").files


def test_transformers_push_and_from_pretrained(hub, tmp_path):
    run_scenario(hub, tmp_path, "transformers")
    assert "model.safetensors" in hub.repos[("model", "user/tiny-resnet")].resolve("main").files


# --- scenarios: run in the child process, after the environment points at the fake Hub -----------------------------


def scenario_endpoint():
    import datasets.config
    from huggingface_hub import HfApi, constants

    assert constants.ENDPOINT == os.environ["HF_ENDPOINT"]
    assert datasets.config.HF_ENDPOINT == os.environ["HF_ENDPOINT"]
    assert HfApi().whoami()["name"] == "user"


def write_model_folder(folder: Path, num_classes: int) -> None:
    """A safetensors file, a config.json, a model card with YAML front matter and a notes file under `extra/`."""
    import torch
    from huggingface_hub import ModelCard, ModelCardData
    from safetensors.torch import save_file

    folder.mkdir(exist_ok=True)
    save_file({"weight": torch.arange(12.0).reshape(3, 4)}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"num_classes": num_classes}))
    ModelCard.from_template(ModelCardData(license="apache-2.0", tags=["fkd"])).save(folder / "README.md")
    (folder / "extra").mkdir(exist_ok=True)
    (folder / "extra" / "notes.txt").write_text("notes")


def scenario_model_files():
    from huggingface_hub import HfApi, ModelCard, hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError
    from huggingface_hub.hf_api import RepoFile

    api, repo_id, folder = HfApi(), "user/files", Path("upload")
    write_model_folder(folder, num_classes=3)
    assert api.create_repo(repo_id).repo_id == repo_id
    assert api.create_repo(repo_id, exist_ok=True).repo_id == repo_id
    first = api.upload_folder(repo_id=repo_id, folder_path=folder)

    for name in ("model.safetensors", "config.json", "extra/notes.txt"):
        assert Path(hf_hub_download(repo_id, name)).read_bytes() == (folder / name).read_bytes()
    snapshot = Path(snapshot_download(repo_id))
    assert (snapshot / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    info = api.model_info(repo_id)
    assert info.sha == first.oid and len(info.sha) == 40
    assert {s.rfilename: s.lfs is not None for s in info.siblings}["model.safetensors"]
    assert ModelCard.load(repo_id).data.tags == ["fkd"]
    [weights] = api.get_paths_info(repo_id, ["model.safetensors", "missing.bin"])
    assert isinstance(weights, RepoFile) and weights.lfs.size == (folder / "model.safetensors").stat().st_size
    assert [b.target_commit for b in api.list_repo_refs(repo_id).branches] == [first.oid]

    (folder / "config.json").write_text(json.dumps({"num_classes": 5}))
    (folder / "extra" / "notes.txt").unlink()
    second = api.upload_folder(repo_id=repo_id, folder_path=folder, delete_patterns=["*.txt"])
    assert second.oid != first.oid
    assert json.loads(Path(hf_hub_download(repo_id, "config.json")).read_text()) == {"num_classes": 5}
    old_config = hf_hub_download(repo_id, "config.json", revision=first.oid)
    assert json.loads(Path(old_config).read_text()) == {"num_classes": 3}
    assert "extra/notes.txt" not in api.list_repo_files(repo_id)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "extra/notes.txt")

    api.upload_file(path_or_fileobj=b"x", path_in_repo="logs/a/b.txt", repo_id=repo_id)
    api.delete_folder("logs", repo_id=repo_id)
    assert api.list_repo_files(repo_id) == [".gitattributes", "README.md", "config.json", "model.safetensors"]
    api.delete_repo(repo_id)
    assert not api.repo_exists(repo_id)


def scenario_private():
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    api, repo_id = HfApi(), "user/private"
    api.create_repo(repo_id, private=True)
    api.upload_file(path_or_fileobj=b'{"secret": 1}', path_in_repo="config.json", repo_id=repo_id)

    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, "config.json", token=False)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).model_info(repo_id)
    with pytest.raises(HfHubHTTPError, match="Invalid credentials"):
        hf_hub_download(repo_id, "config.json", token="hf_wrong_token")
    assert not HfApi(token=False).repo_exists(repo_id)
    assert Path(hf_hub_download(repo_id, "config.json")).read_bytes() == b'{"secret": 1}'
    assert api.model_info(repo_id).private


def scenario_datasets():
    import datasets
    from huggingface_hub import DatasetCard, DatasetCardData, HfApi, hf_hub_download

    rows = datasets.Dataset.from_dict({"image_id": [0, 1, 2], "label": [2, 0, 1], "score": [0.5, 0.25, 1.0]})
    rows.push_to_hub("user/rows")
    assert datasets.load_dataset("user/rows", split="train").to_list() == rows.to_list()
    assert list(datasets.load_dataset("user/rows", split="train", streaming=True)) == rows.to_list()
    assert DatasetCard.load("user/rows").data.dataset_info["splits"][0]["num_examples"] == 3

    folder = Path("labels")
    (folder / "data").mkdir(parents=True)
    rows.to_parquet(folder / "data" / "train-00000.parquet")
    (folder / "fkd_labels.json").write_text(json.dumps({"top_k": 5}))
    configs = [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}]
    DatasetCard.from_template(DatasetCardData(configs=configs)).save(folder / "README.md")
    api = HfApi()
    api.create_repo("user/labels", repo_type="dataset")
    api.upload_folder(repo_id="user/labels", repo_type="dataset", folder_path=folder)
    assert datasets.load_dataset("user/labels")["train"].to_list() == rows.to_list()
    labels_json = hf_hub_download("user/labels", "fkd_labels.json", repo_type="dataset")
    assert json.loads(Path(labels_json).read_text()) == {"top_k": 5}
    assert DatasetCard.load("user/labels").data.configs == configs


def scenario_timm():
    import timm
    import torch

    model = timm.create_model("test_resnet", num_classes=4).eval()
    timm.models.push_to_hf_hub(model, "user/tiny-timm")
    loaded = timm.create_model("hf-hub:user/tiny-timm", pretrained=True).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_same_logits(loaded(images), model(images))


def scenario_transformers():
    import torch
    from transformers import AutoModelForImageClassification, ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=3)
    model = ResNetForImageClassification(config).eval()
    model.push_to_hub("user/tiny-resnet")
    loaded = AutoModelForImageClassification.from_pretrained("user/tiny-resnet").eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert_same_logits(loaded(images).logits, model(images).logits)
    assert loaded.config.num_labels == 3


if __name__ == "__main__":
    globals()[f"scenario_{sys.argv[1]}"]()
