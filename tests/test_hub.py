"""Hub round trips of label sets and students, offline, through the real clients and the fake Hub of hub_server.py.

The clients read `HF_ENDPOINT` when they are imported, so each scenario runs in a fresh interpreter
(`python tests/test_hub.py <scenario> <folder>`) whose environment points at the module's `FakeHub`; the parent
prepares the folders, the child pushes and reads back through huggingface_hub, datasets, timm and transformers,
and the parent checks what the server stored and that no output of the child shows the token.

One opt-in test pushes to the real Hub:

    FKD_HF_TEST_HUB_TOKEN=hf_... FKD_HF_TEST_HUB_NAMESPACE=my-user pytest tests/test_hub.py -k real_hub
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import traceback
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TINY_CLASSES, assert_same_logits
from hub_server import ARGV_TOKEN, FAKE_TOKEN, SHAPED_TOKEN, WRONG_TOKEN, FakeHub

TRAIN_ARGS = (
    "--student",
    "test_resnet",
    "--input_size",
    "32",
    "--num_crops",
    "2",
    "--per_device_train_batch_size",
    "6",
    "--max_steps",
    "1",
    "--save_strategy",
    "no",
    "--report_to",
    "none",
    "--use_cpu",
    "true",
    "--dataloader_num_workers",
    "0",
)


@pytest.fixture(scope="module")
def hub():
    server = FakeHub().start()
    yield server
    server.stop()


def run_scenario(hub: FakeHub | None, tmp_path: Path, name: str, folder: Path, env: dict | None = None) -> str:
    """Runs `scenario_<name>(folder)` in a child process against `hub`; returns its stdout + stderr."""
    env = {**os.environ, **(hub.environment(str(tmp_path / "hf_home")) if hub else {}), **(env or {})}
    command = [sys.executable, __file__, name, str(folder)]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"scenario {name} failed:\n{output[-6000:]}"
    if hub is not None:
        assert [r for r in hub.requests_log if r["route"] is None] == [], "the clients called routes FakeHub lacks"
    return output


def assert_no_token_anywhere(hub: FakeHub, output: str, *folders: Path) -> None:
    """The token is in no stored file of any repo, no child output and no file of the pushed folders."""
    for token in (FAKE_TOKEN, WRONG_TOKEN, ARGV_TOKEN, SHAPED_TOKEN):
        assert token not in output
        for repo in hub.repos.values():
            for commit in repo.commits.values():
                for path, blob in commit.files.items():
                    assert token.encode() not in blob.data, f"{repo.repo_id}/{path} holds a token"
        for folder in folders:
            for path in folder.rglob("*"):
                assert not path.is_file() or token.encode() not in path.read_bytes(), path


def reshard(source: Path, target: Path, rows: int, num_shards: int) -> Path:
    """A copy of the label set `source` keeping its first `rows` rows, in `num_shards` shards."""
    from fkd_hf.labels.format import SHARD_PATTERN, LabelSetMetadata, write_shard

    table = pa.concat_tables(pq.read_table(p) for p in sorted((source / "data").glob("*.parquet"))).slice(0, rows)
    metadata = LabelSetMetadata.from_dict(json.loads((source / "fkd_labels.json").read_text()))
    per_shard = -(-rows // num_shards)
    for shard in range(num_shards):
        write_shard(table.slice(shard * per_shard, per_shard), target / "data" / SHARD_PATTERN.format(shard))
    metadata.num_rows, metadata.num_shards, metadata.rows_per_shard = rows, num_shards, per_shard
    metadata.skipped_rows = []
    shutil.copy(source / "README.md", target / "README.md")
    metadata.save(target)
    return target


@pytest.fixture(scope="module")
def label_sets(tmp_path_factory, image_folder, teacher_dir):
    """`first`: a generated label set in 3 shards; `second`: its first 12 rows in 1 shard; `unfinished`."""
    from fkd_hf import GenerateConfig, generate

    root = tmp_path_factory.mktemp("label_sets")
    generate(
        GenerateConfig(
            dataset=f"imagefolder:{image_folder}",
            output_dir=str(root / "first"),
            teacher=str(teacher_dir),
            stored_crops=3,
            k=2,
            num_shards=3,
            num_workers=0,
        )
    )
    reshard(root / "first", root / "second", rows=12, num_shards=1)
    shutil.copytree(root / "first", root / "unfinished")
    (root / "unfinished" / "fkd_labels.json").unlink()
    return root


def make_student(folder: Path, seed: int, fkd_info: bool = True) -> Path:
    """A tiny timm student saved with fkd_hf.models.save_student, its fkd_student.json, and training leftovers."""
    import torch

    from fkd_hf.hub import StudentInfo
    from fkd_hf.models.students import create_student, save_student

    torch.manual_seed(seed)
    save_student(create_student("test_resnet", list(TINY_CLASSES)), folder)
    if fkd_info:
        StudentInfo(
            license="apache-2.0",
            teacher="timm/test_resnet.r160_in1k",
            teacher_revision="0123abc",
            dataset="user/tiny-photos",
            dataset_split="train",
            label_set=str(folder.parent / "local-labels"),
            label_kind="marginal_smoothing",
            label_k=2,
            label_temperature=1.0,
            stored_crops=3,
            num_crops=2,
            passes=3.0,
            fkd_epochs=6.0,
            learning_rate=0.05,
            optimizer="adamw_torch",
            per_device_batch_size=4,
            temperature=1.0,
            eval_split="validation",
            top1=0.625,
            top5=1.0,
        ).save(folder)
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / "optimizer.pt").write_bytes(b"optimizer state")
    (folder / "training_args.bin").write_bytes(b"pickled args")
    return folder


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    root = tmp_path_factory.mktemp("students")
    make_student(root / "first", seed=0)
    shutil.copy(root / "first" / "model.safetensors", root / "first" / "old-weights.safetensors")
    make_student(root / "second", seed=1)
    make_student(root / "bare", seed=2, fkd_info=False)
    shutil.rmtree(root / "bare" / "checkpoint-2")
    return root


# --- tests -----------------------------------------------------------------------------------------------------------


def test_unfinished_label_set_is_refused_before_any_request(label_sets, capsys):
    from fkd_hf.cli import main

    assert main(["push-labels", str(label_sets / "unfinished"), "--repo-id", "user/never"]) == 1
    err = capsys.readouterr().err
    assert "has no fkd_labels.json: it is not a finished FKD label set" in err and "rerun" in err


def test_unloadable_student_is_refused(tmp_path, capsys):
    from fkd_hf.cli import main

    assert main(["push-student", str(tmp_path), "--repo-id", "user/never"]) == 1
    assert "is not a saved student: it needs config.json and model.safetensors" in capsys.readouterr().err
    # A Trainer checkpoint of a timm student: transformers loads it, timm does not.
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "resnet18", "model_type": "timm_wrapper"}))
    assert main(["push-student", str(tmp_path), "--repo-id", "user/never"]) == 1
    assert "TimmWrapper format, which timm cannot load" in capsys.readouterr().err
    # A timm config that repeats num_classes in model_args: timm loads it, transformers does not.
    config = {"architecture": "resnet18", "num_classes": 3, "model_args": {"num_classes": 3}, "pretrained_cfg": {}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["push-student", str(tmp_path), "--repo-id", "user/never"]) == 1
    assert "repeats num_classes in model_args" in capsys.readouterr().err


def test_weights_that_cannot_be_read_are_refused_by_name(tmp_path, capsys):
    """The weights are opened (header, tensor sizes against the file size) before any request to the Hub."""
    from fkd_hf.cli import main

    folder = make_student(tmp_path / "student", seed=0)
    weights = folder / "model.safetensors"
    whole = weights.read_bytes()
    for damaged in (whole[:-1], whole[:6], whole[:8] + b"x" + whole[9:]):  # truncated data, header, bad JSON
        weights.write_bytes(damaged)
        assert main(["push-student", str(folder), "--repo-id", "user/never"]) == 1
        err = capsys.readouterr().err
        assert f"{weights} cannot be read as weights" in err and "nothing was pushed" in err, err
    weights.unlink()
    shards = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(shards))
    (folder / "model-00001-of-00002.safetensors").write_bytes(whole)
    assert main(["push-student", str(folder), "--repo-id", "user/never"]) == 1
    assert "names shards the folder lacks: model-00002-of-00002.safetensors" in capsys.readouterr().err


def test_cli_lists_the_push_commands(capsys):
    from fkd_hf.cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "push-labels" in out and "push-student" in out


def test_label_set_round_trip_update_in_place_private_and_cli(hub, tmp_path, label_sets):
    output = run_scenario(hub, tmp_path, "labels", label_sets)
    repo = hub.repos[("dataset", "user/labels")]
    head = repo.resolve("main").files
    # The re-push left one shard (the 3 of the first push are gone) with the local bytes, and nothing else changed.
    assert sorted(head) == [".gitattributes", "LICENSE.md", "README.md", "data/shard-00000.parquet", "fkd_labels.json"]
    assert head["LICENSE.md"].data.startswith(b"# Licence\n\nThese soft labels were derived with FKD")
    assert head["data/shard-00000.parquet"].data == (label_sets / "second/data/shard-00000.parquet").read_bytes()
    assert head["data/shard-00000.parquet"].lfs
    first_push = [c for c in repo.commits.values() if "data/shard-00002.parquet" in c.files]
    assert len(first_push) == 1
    assert hub.repos[("dataset", "user/private-labels")].private
    assert not hub.repos[("dataset", "user/labels")].private
    assert any(r["status"] == 206 for r in hub.requests_log), "streaming should read with Range requests"
    assert_no_token_anywhere(hub, output, label_sets)

    # Offline, the label set loads from the cache the online run filled, without a single request.
    before = len(hub.requests_log)
    run_scenario(hub, tmp_path, "labels_offline", label_sets, env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert len(hub.requests_log) == before


def test_student_round_trip_card_update_in_place_private_and_cli(hub, tmp_path, students):
    output = run_scenario(hub, tmp_path, "students", students)
    files = hub.repos[("model", "user/student")].resolve("main").files
    assert sorted(files) == [".gitattributes", "README.md", "config.json", "fkd_student.json", "model.safetensors"]
    pushed_info = json.loads(files["fkd_student.json"].data)
    assert pushed_info["label_set"] == "user/labels" and str(students) not in files["README.md"].data.decode()
    assert "LICENSE.md" in hub.repos[("model", "user/private-student")].resolve("main").files  # licence other
    assert files["model.safetensors"].data == (students / "second/model.safetensors").read_bytes()
    assert hub.repos[("model", "user/private-student")].private
    assert not (students / "first" / "README.md").exists(), "push_student must not modify the local folder"
    assert_no_token_anywhere(hub, output, students)


def _event_file(text: str) -> bytes:
    """Bytes shaped like a TensorBoard event record holding ``text`` (length, CRC, protobuf)."""
    payload = b"\x09" + os.urandom(8) + b"\x1a" + bytes([len(text)]) + text.encode()
    return len(payload).to_bytes(8, "little") + os.urandom(4) + payload + os.urandom(4)


# (command, folder, planted file, its content, how the scenario holds the user's token); the user's token is
# FAKE_TOKEN from HF_TOKEN, or WRONG_TOKEN from the stored login, or ARGV_TOKEN given to push_student(token=...).
LEAKS = [
    ("push-student", "student", "run.sh", f"export HF_TOKEN={FAKE_TOKEN}\nfkd-hf train ...\n".encode(), "env"),
    ("push-student", "student", "train.log", f"step 1 ... token={FAKE_TOKEN}\n".encode(), "env"),
    ("push-student", "student", "logs/events.out.tfevents.1700000000.host.1.0", _event_file(FAKE_TOKEN), "env"),
    ("push-student", "student", "train_config.yaml", f"student: x\nhub_token: {FAKE_TOKEN}\n".encode(), "env"),
    ("push-student", "student", "notes.pdf", b"%PDF-1.4\x00\xff" + SHAPED_TOKEN.encode() + b"\x00", "env"),
    ("push-student", "student", "launch.json", json.dumps({"token": WRONG_TOKEN}).encode(), "stored"),
    ("push_student", "student", "secrets/run.sh", f"--hub_token {ARGV_TOKEN}".encode(), "argument"),
    ("push-labels", "labels", "fkd_labels.json", f"https://user:{FAKE_TOKEN}@example.com/photos".encode(), "env"),
    ("push-labels", "labels", "fkd_labels.json", SHAPED_TOKEN.encode(), "env"),  # a token that is not the user's
]


@pytest.fixture
def leaky_folders(tmp_path, label_sets, students):
    """One copy of a label set or student per entry of LEAKS, with the token planted; removed afterwards, so no file
    the suite leaves holds a token (CI checks)."""
    cases = []
    for index, (command, kind, name, content, source) in enumerate(LEAKS):
        folder = tmp_path / f"leak-{index}"
        shutil.copytree(label_sets / "second" if kind == "labels" else students / "second", folder)
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name == "fkd_labels.json":  # the token inside a value of the real metadata
            metadata = json.loads(target.read_text())
            metadata["dataset"] = f"parquet:{content.decode()}/*.parquet"
            content = json.dumps(metadata).encode()
        target.write_bytes(content)
        cases.append(
            {"command": command, "folder": str(folder), "repo_id": f"user/leak-{index}", "file": name, "source": source}
        )
    truncated = tmp_path / "truncated"
    shutil.copytree(students / "second", truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    yield cases
    for case in cases:
        shutil.rmtree(case["folder"])


def test_a_push_is_refused_before_anything_is_created_when_any_file_holds_a_token(hub, tmp_path, leaky_folders):
    """Every file of any type is scanned, for the user's token from every source and for anything shaped like a
    Hugging Face token; truncated weights are refused too. Each refusal names the file and sends no request."""
    before = len(hub.requests_log)
    output = run_scenario(hub, tmp_path, "refusals", tmp_path)
    assert [r["route"] for r in hub.requests_log[before:]] == []
    assert [
        case["repo_id"]
        for case in leaky_folders
        if ("model", case["repo_id"]) in hub.repos or ("dataset", case["repo_id"]) in hub.repos
    ] == []
    for token in (FAKE_TOKEN, WRONG_TOKEN, ARGV_TOKEN, SHAPED_TOKEN):
        assert token not in output


def test_no_command_shows_a_token_a_server_echoes(tmp_path, label_sets, students):
    """A server that repeats the Authorization header in its 500 errors and warnings: every push, and `train
    --push_to_hub`, shows `Bearer ***` for the token, whichever the source (--hub_token, HF_TOKEN, stored login),
    in what is printed, logged and raised."""
    echoing = FakeHub().start()
    echoing.echo_authorization = True
    try:
        folders = {"FKD_HF_TEST_LABELS": str(label_sets / "first"), "FKD_HF_TEST_STUDENT": str(students / "second")}
        output = run_scenario(echoing, tmp_path, "echo", tmp_path, env=folders)
    finally:
        echoing.stop()
    assert echoing.repos == {} and {r["status"] for r in echoing.requests_log} == {500}
    for token in (FAKE_TOKEN, WRONG_TOKEN, ARGV_TOKEN):
        assert token not in output
    assert "Authorization header was 'Bearer ***'" in output  # huggingface_hub logged the echoed warning, redacted
    assert output.count("Bearer ***") >= 8
    for token in (FAKE_TOKEN, WRONG_TOKEN, ARGV_TOKEN):  # nor in any file the commands wrote (the trained student)
        assert [p for p in tmp_path.rglob("*") if p.is_file() and token.encode() in p.read_bytes()] == []


@pytest.mark.skipif(
    not (os.environ.get("FKD_HF_TEST_HUB_TOKEN") and os.environ.get("FKD_HF_TEST_HUB_NAMESPACE")),
    reason="set FKD_HF_TEST_HUB_TOKEN and FKD_HF_TEST_HUB_NAMESPACE to push to the real Hub",
)
def test_real_hub_round_trip(tmp_path, label_sets, students):
    """Pushes a private label set and student to the real Hub, reads them back, and deletes both repos."""
    token = os.environ["FKD_HF_TEST_HUB_TOKEN"]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_HUB_CACHE", "HF_DATASETS_CACHE")}
    env.update(
        HF_TOKEN=token,
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_OFFLINE="0",
        HF_DATASETS_OFFLINE="0",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        FKD_HF_TEST_SUFFIX=uuid.uuid4().hex[:8],
    )
    command = [sys.executable, __file__, "real_hub", str(tmp_path)]
    shutil.copytree(label_sets / "first", tmp_path / "labels")
    shutil.copytree(students / "first", tmp_path / "student")
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert token not in output
    assert result.returncode == 0, f"real Hub scenario failed:\n{output}"


# --- scenarios: run in the child process, after the environment points at the fake Hub -----------------------------


def _verbose_logging() -> None:
    """Everything the libraries log goes to the captured output, which the parent searches for the token."""
    import logging

    from huggingface_hub.utils import logging as hf_logging

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    hf_logging.set_verbosity_debug()


def _cli(*argv: str) -> tuple[int, str, str]:
    """Runs `fkd-hf` in this process; returns the exit code, stdout and stderr (also echoed for the parent)."""
    from fkd_hf.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    print(out.getvalue(), err.getvalue(), sep="\n", file=sys.stderr)
    return code, out.getvalue(), err.getvalue()


def scenario_labels(root: str) -> None:
    import datasets
    from huggingface_hub import DatasetCard, HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    from fkd_hf import load_label_set, push_label_set, push_student

    _verbose_logging()
    assert constants.ENDPOINT == os.environ["HF_ENDPOINT"] and "127.0.0.1" in constants.ENDPOINT
    root, api = Path(root), HfApi()
    local = load_label_set(root / "first")

    # Push, then read back with fkd_hf, with plain datasets, and streamed: identical rows, features and metadata.
    url = push_label_set(root / "first", "labels")  # no namespace: the token's user
    assert url == f"{constants.ENDPOINT}/datasets/user/labels"
    pushed = load_label_set("user/labels")
    assert pushed.metadata == local.metadata
    assert pushed.dataset.features == local.dataset.features == local.metadata.features()
    assert pushed.dataset.to_list() == local.dataset.to_list()
    plain = datasets.load_dataset("user/labels", split="train")
    assert plain.features == local.metadata.features() and plain.to_list() == local.dataset.to_list()
    streamed = load_label_set("user/labels", streaming=True)
    assert list(streamed.dataset) == local.dataset.to_list()
    first_sha = api.dataset_info("user/labels").sha

    card = DatasetCard.load("user/labels")
    data_files = [{"split": "train", "path": "data/*.parquet"}]
    assert card.data.configs == [{"config_name": "default", "data_files": data_files}]
    assert card.data.dataset_info["splits"][0]["num_examples"] == local.metadata.num_rows
    shards = [str(p) for p in sorted((root / "first" / "data").glob("*.parquet"))]
    measured = datasets.load_dataset("parquet", data_files=shards, split="train").info.splits["train"].num_bytes
    assert card.data.dataset_info["splits"][0]["num_bytes"] == measured > 0
    assert (card.data.license, card.data.license_name, card.data.license_link) == (
        "other",
        "teacher-and-dataset-terms",
        "LICENSE.md",
    )
    assert local.metadata.dataset_absolute.split(":", 1)[1] not in card.content  # the photos' folder
    assert {"fkd", "knowledge-distillation"} <= set(card.data.tags)
    meta = local.metadata
    for text in (
        'load_label_set("user/labels")',
        f"`{Path(meta.teacher).name}`",
        f"R) | {meta.stored_crops} |",
        f"`{meta.kind}`",
        f"k = {meta.k}",
        f"temperature {meta.temperature}",
        f"{meta.bytes_per_crop:.1f}",
        "shen2022fast",
        "\n".join(f"{i} {name}" for i, name in enumerate(meta.class_names)),
        "datasets.concatenate_datasets([images, labels.dataset], axis=1)",
    ):
        assert text in card.text, text

    # Re-push a changed label set (12 rows, 1 shard): updated in place, the old commit still readable.
    push_label_set(root / "second", "user/labels", commit_message="Fewer rows")
    assert sorted(f for f in api.list_repo_files("user/labels", repo_type="dataset") if f.startswith("data/")) == [
        "data/shard-00000.parquet"
    ]
    again = load_label_set("user/labels")
    assert again.metadata.num_rows == 12 and again.dataset.to_list() == local.dataset.to_list()[:12]
    assert datasets.load_dataset("user/labels", split="train").num_rows == 12
    old = load_label_set("user/labels", revision=first_sha)
    assert old.metadata == local.metadata and old.dataset.num_rows == local.metadata.num_rows

    # Private: readable with the token only.
    code, out, err = _cli("push-labels", str(root / "first"), "--repo-id", "user/private-labels", "--private")
    assert code == 0 and "Label set pushed to user/private-labels" not in out and "datasets/user/private-labels" in out
    assert api.dataset_info("user/private-labels").private
    with pytest.raises(RepositoryNotFoundError):  # before the cache holds it: a cached copy would be used instead
        load_label_set("user/private-labels", token=False)
    assert load_label_set("user/private-labels").dataset.num_rows == local.metadata.num_rows

    # `fkd-hf train` takes the Hub id where it takes a folder; the student it writes pushes and loads back.
    student = Path("student").resolve()
    code, out, err = _cli("train", "--label_set", "user/private-labels", *TRAIN_ARGS, "--output_dir", str(student))
    assert code == 0, err
    push_student(student, "user/trained", label_set="user/private-labels")
    from transformers import AutoModelForImageClassification

    assert AutoModelForImageClassification.from_pretrained("user/trained").config.id2label == dict(
        enumerate(local.metadata.class_names)
    )
    with pytest.raises(FileNotFoundError, match="neither a label-set folder nor a Hub dataset repo id"):
        load_label_set("no/such/folder")

    # --private on an existing public repo would leave the data public: refused before anything is pushed.
    code, out, err = _cli("push-labels", str(root / "first"), "--repo-id", "user/labels", "--private")
    assert code == 1 and "already exists and is public" in err and "nothing was pushed" in err
    assert load_label_set("user/labels").metadata.num_rows == 12

    # A wrong token: a clear message, and the token appears nowhere (the parent also checks all output).
    with pytest.raises(HfHubHTTPError) as raised:
        push_label_set(root / "first", "user/labels", token=WRONG_TOKEN)
    assert WRONG_TOKEN not in str(raised.value) and WRONG_TOKEN not in repr(raised.value.args)
    os.environ["HF_TOKEN"] = WRONG_TOKEN
    code, out, err = _cli("push-labels", str(root / "first"), "--repo-id", "user/labels")
    assert code == 1 and "Authentication failed" in err and "hf auth login" in err and WRONG_TOKEN not in out + err
    os.environ["HF_TOKEN"] = FAKE_TOKEN


@contextlib.contextmanager
def _token_source(source: str):
    """The user's token as HF_TOKEN (FAKE_TOKEN), or only as the stored login (WRONG_TOKEN; removed afterwards)."""
    from huggingface_hub import constants

    if source != "stored":
        yield
        return
    stored, environment = Path(constants.HF_TOKEN_PATH), os.environ.pop("HF_TOKEN")
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text(WRONG_TOKEN)
    try:
        yield
    finally:
        stored.unlink()
        os.environ["HF_TOKEN"] = environment


def scenario_refusals(root: str) -> None:
    from fkd_hf import push_student

    for case in json.loads((Path(root) / "cases.json").read_text()):
        with _token_source(case["source"]):
            if case["command"] == "push_student":
                with pytest.raises(ValueError) as raised:
                    push_student(case["folder"], case["repo_id"], token=ARGV_TOKEN)
                err = str(raised.value)
            else:
                code, _, err = _cli(case["command"], case["folder"], "--repo-id", case["repo_id"])
                assert code == 1, err
        assert f"{case['file']} contains a Hugging Face token: remove it from the file" in err, err
    code, _, err = _cli("push-student", str(Path(root) / "truncated"), "--repo-id", "user/truncated")
    assert code == 1 and "model.safetensors cannot be read as weights" in err and "truncated" in err, err


def scenario_echo(root: str) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    from fkd_hf import push_student

    _verbose_logging()
    labels, student = os.environ["FKD_HF_TEST_LABELS"], os.environ["FKD_HF_TEST_STUDENT"]
    for source, command, folder in [
        ("env", "push-labels", labels),
        ("stored", "push-student", student),
        ("env", "push-student", student),
    ]:
        with _token_source(source):
            code, _, err = _cli(command, folder, "--repo-id", "user/echo")
        assert code == 1 and "Bearer ***" in err, err

    # --hub_token is the only token: train, then its push fails; with --debug the traceback is redacted too.
    os.environ.pop("HF_TOKEN")
    code, _, err = _cli(
        "--debug",
        "train",
        "--label_set",
        labels,
        *TRAIN_ARGS,
        "--output_dir",
        "student-echo",
        "--push_to_hub",
        "true",
        "--hub_token",
        ARGV_TOKEN,
        "--hub_model_id",
        "user/echo",
    )
    assert code == 1 and "Traceback" in err and "Bearer ***" in err, err

    # The Python API: the error raised holds no token either.
    with pytest.raises(HfHubHTTPError) as raised:
        push_student(student, "user/echo", token=ARGV_TOKEN)
    shown = "".join(traceback.format_exception(raised.value))
    assert "Bearer ***" in shown and ARGV_TOKEN not in shown + str(raised.value.server_message)
    print(shown, file=sys.stderr)


def scenario_labels_offline(root: str) -> None:
    from fkd_hf import load_label_set

    pushed, local = load_label_set("user/labels"), load_label_set(Path(root) / "second")
    assert pushed.metadata == local.metadata and pushed.dataset.to_list() == local.dataset.to_list()


def _logits(root: Path) -> dict:
    """Logits of one batch from the local folder and the pushed repo, through timm and transformers."""
    import timm
    import torch
    from transformers import AutoModelForImageClassification

    images = torch.randn(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return {
            "local": timm.create_model(f"local-dir:{root}", pretrained=True).eval()(images),
            "timm": timm.create_model("hf-hub:user/student", pretrained=True).eval()(images),
            "transformers": AutoModelForImageClassification.from_pretrained("user/student").eval()(images).logits,
        }


def scenario_students(root: str) -> None:
    import torch
    from huggingface_hub import HfApi, ModelCard, constants, hf_hub_download
    from transformers import AutoModelForImageClassification

    from fkd_hf import push_student
    from fkd_hf.hub import StudentInfo

    _verbose_logging()
    assert constants.ENDPOINT == os.environ["HF_ENDPOINT"]
    root, api = Path(root), HfApi()

    url = push_student(root / "first", "user/student", label_set="user/labels")
    assert url == f"{constants.ENDPOINT}/user/student"
    logits = _logits(root / "first")
    assert_same_logits(logits["timm"], logits["local"])
    assert_same_logits(logits["transformers"], logits["local"])
    assert "old-weights.safetensors" in api.list_repo_files("user/student")
    model = AutoModelForImageClassification.from_pretrained("user/student")
    assert model.config.id2label == dict(enumerate(TINY_CLASSES))

    card = ModelCard.load("user/student")
    data = card.data
    assert data.library_name == "timm" and data.license == "apache-2.0" and data.pipeline_tag == "image-classification"
    assert {"fkd", "knowledge-distillation", "image-classification"} <= set(data.tags)
    assert data.datasets == ["user/labels", "user/tiny-photos"]
    assert data.model_name == "student"
    results = {r.metric_name: r for r in data.eval_results}
    assert results["top-1 accuracy"].metric_value == 0.625 and results["top-5 accuracy"].metric_value == 1.0
    assert {(r.task_type, r.dataset_type, r.dataset_split) for r in data.eval_results} == {
        ("image-classification", "user/tiny-photos", "validation")
    }
    for text in (
        'timm.create_model("hf-hub:user/student", pretrained=True)',
        'from_pretrained("user/student")',
        "`timm/test_resnet.r160_in1k`](",
        "(revision `0123abc`)",
        "62.50 %",
        "| learning rate | 0.05 |",
        "| crops per image and pass (m) | 2 |",
        "| FKD epochs (passes x m) | 6.0 |",
        "shen2022fast",
    ):
        assert text in card.text, text
    info = json.loads(Path(hf_hub_download("user/student", "fkd_student.json")).read_text())
    info = StudentInfo.from_json_dict(info)
    assert info.model_id == "user/student" and info.label_set == "user/labels" and info.top1 == 0.625

    # Re-push other weights: updated in place, the stale weights file deleted, the card kept.
    code, out, err = _cli(
        "push-student", str(root / "second"), "--repo-id", "user/student", "--label-set", "user/labels"
    )
    assert code == 0 and out.startswith("Student pushed to") and out.rstrip().endswith("/user/student"), err
    logits = _logits(root / "second")
    assert_same_logits(logits["timm"], logits["local"])
    assert_same_logits(logits["transformers"], logits["local"])
    assert "old-weights.safetensors" not in api.list_repo_files("user/student")

    # A folder without fkd_student.json still gets a valid card; private repos need the token.
    push_student(root / "bare", "user/private-student", private=True)
    card = ModelCard.load("user/private-student")
    assert card.data.library_name == "timm" and card.data.eval_results is None and "`test_resnet" in card.text
    with pytest.raises(OSError):
        AutoModelForImageClassification.from_pretrained("user/private-student", token=False)
    pushed = AutoModelForImageClassification.from_pretrained("user/private-student").eval()
    local = AutoModelForImageClassification.from_pretrained(root / "bare").eval()
    with torch.no_grad():
        assert_same_logits(pushed(torch.zeros(1, 3, 40, 40)).logits, local(torch.zeros(1, 3, 40, 40)).logits)


def scenario_real_hub(root: str) -> None:
    """Against huggingface.co: private label set + student, read back through every client, then deleted."""
    import timm
    import torch
    from huggingface_hub import DatasetCard, HfApi, ModelCard, constants
    from huggingface_hub.errors import RepositoryNotFoundError
    from transformers import AutoModelForImageClassification

    from fkd_hf import load_label_set, push_label_set, push_student

    assert constants.ENDPOINT == "https://huggingface.co"
    root, api = Path(root), HfApi()
    suffix, namespace = os.environ["FKD_HF_TEST_SUFFIX"], os.environ["FKD_HF_TEST_HUB_NAMESPACE"]
    labels_id, student_id = f"{namespace}/fkd-hf-test-labels-{suffix}", f"{namespace}/fkd-hf-test-student-{suffix}"
    try:
        push_label_set(root / "labels", labels_id, private=True)
        with pytest.raises(RepositoryNotFoundError):  # anonymous, before the cache holds a copy
            load_label_set(labels_id, token=False)
        local = load_label_set(root / "labels")
        pushed = load_label_set(labels_id)
        assert pushed.metadata == local.metadata and pushed.dataset.to_list() == local.dataset.to_list()
        assert list(load_label_set(labels_id, streaming=True).dataset) == local.dataset.to_list()
        assert DatasetCard.load(labels_id).data.configs[0]["data_files"][0]["path"] == "data/*.parquet"

        push_student(root / "student", student_id, private=True, label_set=labels_id)
        images = torch.randn(2, 3, 40, 40)
        with torch.no_grad():
            a = timm.create_model(f"hf-hub:{student_id}", pretrained=True).eval()(images)
            b = AutoModelForImageClassification.from_pretrained(student_id).eval()(images).logits
        assert_same_logits(a, b)
        assert ModelCard.load(student_id).data.datasets[0] == labels_id
    finally:
        api.delete_repo(labels_id, repo_type="dataset", missing_ok=True)
        api.delete_repo(student_id, missing_ok=True)


if __name__ == "__main__":
    globals()[f"scenario_{sys.argv[1]}"](sys.argv[2])
