"""In-process fake of the Hugging Face Hub HTTP API, for offline tests of the real clients.

It speaks the routes that `huggingface_hub`, `datasets`, `transformers` and `timm` use to create repos, commit
files (regular and LFS), read repo info and trees, and download files (with `Range`). Repos live in memory, each
commit gets a fresh 40-hex sha, and `main` or any commit sha resolves.

The clients read `HF_ENDPOINT` and friends at import time, so set the environment before anything imports them:

>>> hub = FakeHub().start()
>>> env = {**os.environ, **hub.environment(tmp_home)}  # for a child process
>>> hub.stop()

`hub.echo_authorization = True` makes every request fail with a 500 whose error message and `X-HF-Warning` header
repeat the request's `Authorization` header, as a misbehaving server or proxy might: what a client prints or logs
then must not show the token.

Every token the tests use is defined here (`TEST_TOKENS`): after the suite, CI fails when a file the tests wrote holds
any of them (`.ci/token_guard.py`).
"""

import base64
import datetime
import hashlib
import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

FAKE_TOKEN = "hf_fake_test_token"  # the token FakeHub accepts
WRONG_TOKEN = "hf_wrong_secret_token_42"  # a token FakeHub refuses
SHAPED_TOKEN = "hf_" + "TestOnly" * 4 + "Qz"  # shaped like a real Hugging Face token (hf_ + 34 letters), nobody's
ARGV_TOKEN = "argv-only-secret-7d1c9e"  # given only as --hub_token: not token-shaped, so only remembering it redacts it
CARD_TOKEN = "hf_secret_token_never_in_a_card"
RUNNER_TOKEN = "hf_runnerTestSecretToken123"
TRAIN_TOKEN = "hf_trainSafetySecretToken42"
TEST_TOKENS = (FAKE_TOKEN, WRONG_TOKEN, SHAPED_TOKEN, ARGV_TOKEN, CARD_TOKEN, RUNNER_TOKEN, TRAIN_TOKEN)
FAKE_USER = "user"
LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".msgpack",
    ".onnx",
    ".npy",
    ".npz",
    ".parquet",
    ".arrow",
    ".zip",
    ".gz",
    ".tar",
    ".pkl",
    ".pickle",
)
LFS_MIN_SIZE = 10 * 1024 * 1024
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()

_TYPE = r"(?P<type>models|datasets|spaces)"
_REPO = r"(?P<repo>[^/]+/[^/]+)"
_REV = r"(?P<rev>refs/(?:pr|convert)/[^/]+|[^/]+)"


class HubError(Exception):
    """An error answer: HTTP status, Hub `X-Error-Code` and message."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def git_blob_sha(data: bytes) -> str:
    """Git object id of a blob, as the Hub reports for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """File content and whether it is stored with LFS."""

    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def oid(self) -> str:
        """Git blob id: of the content, or of the LFS pointer file."""
        return git_blob_sha(self.pointer if self.lfs else self.data)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.oid


@dataclass
class Commit:
    sha: str
    title: str
    date: str
    files: dict[str, Blob]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit:
        """Commit of a branch name or a full commit sha."""
        sha = self.branches.get(rev, rev)
        if sha not in self.commits:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return self.commits[sha]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _card_data(readme: bytes) -> dict:
    """The YAML front matter of a README.md as a dict, or {}."""
    match = re.match(rb"^---\s*\n(.*?)\n---\s*\n", readme, re.DOTALL)
    data = yaml.safe_load(match.group(1)) if match else None
    return data if isinstance(data, dict) else {}


def _tree_entries(files: dict[str, Blob], root: str, recursive: bool) -> list[dict]:
    """Tree API entries (files and directories) under `root`."""
    prefix = f"{root}/" if root else ""
    below = {path: blob for path, blob in files.items() if path.startswith(prefix)}
    if root and not below:
        raise HubError(404, "EntryNotFound", f"{root} does not exist on this revision")
    dirs = {d for path in below for d in _parents(path) if d.startswith(prefix)}
    entries = [_dir_entry(files, d) for d in sorted(dirs)] + [_file_entry(p, b) for p, b in sorted(below.items())]
    if recursive:
        return entries
    return [e for e in entries if "/" not in e["path"][len(prefix) :]]


def _parents(path: str) -> list[str]:
    """Folders that contain `path` ('a/b/c' -> ['a', 'a/b'])."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _file_entry(path: str, blob: Blob) -> dict:
    entry = {"type": "file", "path": path, "size": len(blob.data), "oid": blob.oid}
    if blob.lfs:
        entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(blob.pointer)}
    return entry


def _dir_entry(files: dict[str, Blob], path: str) -> dict:
    listing = "".join(f"{p}:{b.oid}\n" for p, b in sorted(files.items()) if p.startswith(path + "/"))
    return {"type": "directory", "path": path, "size": 0, "oid": hashlib.sha1(listing.encode()).hexdigest()}


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Inclusive byte range of a `bytes=a-b`, `bytes=a-` or `bytes=-n` header, or None when unsatisfiable."""
    start, _, end = header.removeprefix("bytes=").split(",")[0].strip().partition("-")
    if not start:
        first, last = max(size - int(end), 0), size - 1
    else:
        first, last = int(start), min(int(end), size - 1) if end else size - 1
    return (first, last) if first <= last else None


class FakeHub:
    """A fake Hub on 127.0.0.1: `start()`, point clients at `url` with `token`, inspect `requests_log`, `stop()`."""

    def __init__(self):
        self.token = FAKE_TOKEN
        self.echo_authorization = False
        self.requests_log: list[dict] = []
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.lock = threading.RLock()
        self._commit_counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        handler = type("BoundHandler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def environment(self, hf_home: str) -> dict[str, str]:
        """Environment variables that point every Hugging Face client at this server, with caches in `hf_home`."""
        return {
            "HF_ENDPOINT": self.url,
            "HF_TOKEN": self.token,
            "HF_HOME": hf_home,
            "HF_HUB_CACHE": os.path.join(hf_home, "hub"),
            "HF_DATASETS_CACHE": os.path.join(hf_home, "datasets"),
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }

    def commit(self, repo: Repo, title: str, files: dict[str, Blob]) -> Commit:
        """Record a new commit on `main` of `repo`."""
        with self.lock:
            self._commit_counter += 1
            seed = f"{repo.repo_type}/{repo.repo_id}\n{repo.branches.get('main')}\n{title}\n{self._commit_counter}"
            commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), title, _now(), files)
            repo.commits[commit.sha] = commit
            repo.branches["main"] = commit.sha
            return commit


def configure_environment(tmp_home: str) -> FakeHub:
    """Start a FakeHub and point this process's Hugging Face clients at it; call before importing any of them."""
    if "huggingface_hub" in sys.modules:
        raise RuntimeError("huggingface_hub is already imported: its endpoint can no longer change")
    hub = FakeHub().start()
    os.environ.update(hub.environment(tmp_home))
    return hub


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to `FakeHub` state; every answer has a Content-Length so connections stay alive."""

    protocol_version = "HTTP/1.1"
    hub: FakeHub

    ROUTES = (
        ("GET", r"/api/whoami-v2", "whoami"),
        ("POST", r"/api/repos/create", "create_repo"),
        ("DELETE", r"/api/repos/delete", "delete_repo"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("GET", rf"/api/{_TYPE}/{_REPO}(?:/revision/{_REV})?", "repo_info"),
        ("GET", rf"/api/{_TYPE}/{_REPO}/tree/{_REV}(?:/(?P<path>.*))?", "tree"),
        ("POST", rf"/api/{_TYPE}/{_REPO}/paths-info/{_REV}", "paths_info"),
        ("GET", rf"/api/{_TYPE}/{_REPO}/refs", "refs"),
        ("POST", rf"/api/{_TYPE}/{_REPO}/preupload/{_REV}", "preupload"),
        ("POST", rf"/api/{_TYPE}/{_REPO}/commit/{_REV}", "commit"),
        ("POST", rf"/(?:(?P<type>datasets|spaces)/)?{_REPO}\.git/info/lfs/objects/batch", "lfs_batch"),
        ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", "lfs_upload"),
        ("GET", rf"/(?:(?P<type>datasets|spaces)/)?{_REPO}/resolve/{_REV}/(?P<path>.+)", "resolve"),
        ("HEAD", rf"/(?:(?P<type>datasets|spaces)/)?{_REPO}/resolve/{_REV}/(?P<path>.+)", "resolve"),
    )

    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format, *args):
        """Silence the default per-request stderr line; `requests_log` records requests instead."""

    # --- plumbing -----------------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self.body = self._read_body()
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        entry = {"method": self.command, "path": self.path, "route": None, "status": None}
        self.hub.requests_log.append(entry)
        try:
            handler, params = self._route(url.path)
            entry["route"] = handler.__name__.removeprefix("_r_")
            if self.hub.echo_authorization:
                self._echo_authorization()
            if entry["route"] != "lfs_upload" and self._auth() == "invalid":
                raise HubError(401, "Unauthorized", "Invalid credentials in Authorization header")
            status, headers, payload = handler(**params)
        except HubError as err:
            if entry["route"] is None:
                print(f"FakeHub: no route for {self.command} {self.path}", file=sys.stderr)
            message = err.message.encode("ascii", "replace").decode()
            status, payload = err.status, {"error": err.message}
            headers = {**err.headers, "X-Error-Code": err.code, "X-Error-Message": message}
        entry["status"] = status
        self._send(status, headers, payload)

    def _route(self, path: str):
        for method, pattern, name in self.ROUTES:
            match = re.fullmatch(pattern, path)
            if method == self.command and match:
                params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                return getattr(self, f"_r_{name}"), params
        raise HubError(404, "NotFound", f"FakeHub has no route for {self.command} {path}")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, headers: dict, payload) -> None:
        if isinstance(payload, bytes):
            body = payload
        else:
            body = json.dumps(payload).encode()
            headers.setdefault("Content-Type", "application/json")
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json_body(self) -> dict:
        return json.loads(self.body or b"{}")

    def _auth(self) -> str:
        """'none', 'valid' or 'invalid' for the request's bearer token."""
        header = self.headers.get("Authorization")
        if header is None:
            return "none"
        return "valid" if header == f"Bearer {self.hub.token}" else "invalid"

    def _echo_authorization(self) -> None:
        """Fails with a 500 that repeats the Authorization header in its message and in a logged warning."""
        seen = f"the request's Authorization header was {self.headers.get('Authorization')!r}"
        warning = f"echo-{len(self.hub.requests_log)}; {seen}"  # a new topic each time: huggingface_hub logs each
        raise HubError(500, "InternalError", f"Internal error: {seen}", {"X-HF-Warning": warning})

    def _require_auth(self) -> None:
        if self._auth() != "valid":
            raise HubError(401, "Unauthorized", "You must be authenticated to write to the Hub")

    def _repo(self, type: str | None, repo: str, write: bool = False) -> Repo:
        """A repo the caller may read (or write), raising the Hub's not-found answers otherwise."""
        if write:
            self._require_auth()
        with self.hub.lock:
            found = self.hub.repos.get((REPO_TYPES.get(type or "models"), repo))
        if found is None or (found.private and self._auth() != "valid"):
            status = 404 if self._auth() == "valid" else 401
            raise HubError(status, "RepoNotFound", "Repository not found")
        return found

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.hub.url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    # --- routes -------------------------------------------------------------------------------------------------

    def _r_whoami(self):
        self._require_auth()
        token_info = {"displayName": "fake", "role": "write"}
        return (
            200,
            {},
            {
                "type": "user",
                "id": "0" * 24,
                "name": FAKE_USER,
                "fullname": "Fake User",
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": token_info},
            },
        )

    def _r_create_repo(self):
        self._require_auth()
        request = self._json_body()
        repo_type = request.get("type") or "model"
        repo_id = f"{request.get('organization') or FAKE_USER}/{request['name']}"
        with self.hub.lock:
            existing = self.hub.repos.get((repo_type, repo_id))
            if existing is not None:
                message = "You already created this repo"
                headers = {"X-Error-Code": "RepoExists", "X-Error-Message": message}
                return 409, headers, {"error": message, "url": self._repo_url(existing)}
            repo = Repo(repo_type, repo_id, request.get("visibility", "public") == "private", _now())
            self.hub.repos[(repo_type, repo_id)] = repo
            self.hub.commit(repo, "initial commit", {".gitattributes": Blob(GITATTRIBUTES, lfs=False)})
        return 200, {}, {"url": self._repo_url(repo), "name": repo_id, "id": repo_id}

    def _r_delete_repo(self):
        request = self._json_body()
        repo_id = f"{request.get('organization') or FAKE_USER}/{request['name']}"
        repo = self._repo(f"{request.get('type') or 'model'}s", repo_id, write=True)
        with self.hub.lock:
            del self.hub.repos[(repo.repo_type, repo.repo_id)]
        return 200, {}, {}

    def _r_validate_yaml(self):
        content = self._json_body().get("content", "")
        try:
            _card_data(content.encode())
        except yaml.YAMLError as err:
            return 400, {}, {"errors": [{"message": str(err)}], "warnings": []}
        return 200, {}, {"errors": [], "warnings": []}

    def _r_repo_info(self, type, repo, rev="main"):
        found = self._repo(type, repo)
        commit = found.resolve(rev)
        card = _card_data(commit.files["README.md"].data) if "README.md" in commit.files else {}
        siblings = [
            {"rfilename": e["path"], "size": e["size"], "blobId": e["oid"]}
            | (
                {"lfs": {"sha256": e["lfs"]["oid"], "size": e["size"], "pointerSize": e["lfs"]["pointerSize"]}}
                if "lfs" in e
                else {}
            )
            for e in _tree_entries(commit.files, "", recursive=True)
            if e["type"] == "file"
        ]
        info = {
            "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
            "id": repo,
            "author": repo.split("/")[0],
            "sha": commit.sha,
            "lastModified": commit.date,
            "createdAt": found.created,
            "private": found.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": card.get("tags") or [],
            "cardData": card,
            "siblings": siblings,
        }
        if found.repo_type == "model":
            info |= {"modelId": repo, **{key: card.get(key) for key in ("library_name", "pipeline_tag")}}
        return 200, {}, info

    def _r_tree(self, type, repo, rev, path=""):
        commit = self._repo(type, repo).resolve(rev)
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        return 200, {}, _tree_entries(commit.files, path.strip("/"), recursive)

    def _r_paths_info(self, type, repo, rev):
        commit = self._repo(type, repo).resolve(rev)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = self._json_body().get("paths", [])
        else:
            paths = parse_qs(self.body.decode()).get("paths", [])
        entries = {e["path"]: e for e in _tree_entries(commit.files, "", recursive=True)}
        return 200, {}, [entries[p.strip("/")] for p in paths if p.strip("/") in entries]

    def _r_refs(self, type, repo):
        found = self._repo(type, repo)
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": sha} for b, sha in found.branches.items()]
        return 200, {}, {"branches": branches, "converts": [], "tags": []}

    def _r_preupload(self, type, repo, rev):
        commit = self._repo(type, repo, write=True).resolve(rev)
        answers = []
        for file in self._json_body()["files"]:
            sample = base64.b64decode(file.get("sample", ""))
            lfs = file["path"].endswith(LFS_SUFFIXES) or file["size"] >= LFS_MIN_SIZE or b"\0" in sample
            remote = commit.files.get(file["path"])
            remote_oid = remote and (remote.sha256 if remote.lfs else remote.oid)
            answers.append(
                {
                    "path": file["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": remote_oid,
                }
            )
        return 200, {}, {"files": answers, "commitOid": commit.sha}

    def _r_lfs_batch(self, repo, type=None):
        self._repo(type, repo, write=True)
        objects = []
        for obj in self._json_body()["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs_objects:
                answer["actions"] = {"upload": {"href": f"{self.hub.url}/lfs-upload/{obj['oid']}"}}
            objects.append(answer)
        return 200, {"Content-Type": "application/vnd.git-lfs+json"}, {"transfer": "basic", "objects": objects}

    def _r_lfs_upload(self, oid):
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, "BadRequest", "Uploaded content does not match its sha256")
        with self.hub.lock:
            self.hub.lfs_objects[oid] = self.body
        return 200, {}, b""

    def _r_commit(self, type, repo, rev):
        found = self._repo(type, repo, write=True)
        if rev not in found.branches:
            raise HubError(404, "RevisionNotFound", f"Can only commit to a branch, not {rev}")
        if "create_pr" in self.query:
            raise HubError(400, "BadRequest", "FakeHub does not support pull requests")
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        with self.hub.lock:
            head = found.resolve(rev)
            if header.get("parentCommit") not in (None, head.sha):
                raise HubError(412, "PreconditionFailed", "A commit has happened since. Please refresh and try again.")
            files = self._apply_operations(dict(head.files), lines)
            commit = self.hub.commit(found, header.get("summary") or "update", files)
        commit_url = f"{self._repo_url(found)}/commit/{commit.sha}"
        return 200, {}, {"success": True, "commitOid": commit.sha, "commitUrl": commit_url, "pullRequestUrl": None}

    def _apply_operations(self, files: dict[str, Blob], lines: list[dict]) -> dict[str, Blob]:
        """Deletions first, then additions, like the Hub (a commit may delete a folder and re-add into it)."""
        for line in lines:
            path = line["value"].get("path", "").strip("/")
            if line["key"] == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, "EntryNotFound", f"Cannot delete {path}: file not found")
            elif line["key"] == "deletedFolder":
                inside = [p for p in files if p.startswith(path + "/")]
                if not inside:
                    raise HubError(404, "EntryNotFound", f"Cannot delete {path}: folder not found")
                for p in inside:
                    del files[p]
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = Blob(base64.b64decode(value["content"]), lfs=False)
            elif line["key"] == "lfsFile":
                if value["oid"] not in self.hub.lfs_objects:
                    raise HubError(422, "LfsObjectNotFound", f"LFS object {value['oid']} was never uploaded")
                files[value["path"]] = Blob(self.hub.lfs_objects[value["oid"]], lfs=True)
            elif line["key"] not in ("header", "deletedFile", "deletedFolder"):
                raise HubError(400, "BadRequest", f"FakeHub does not support commit operation {line['key']!r}")
        return files

    def _r_resolve(self, repo, rev, path, type=None):
        commit = self._repo(type, repo).resolve(rev)
        blob = commit.files.get(path)
        headers = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        if blob is None:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {rev}", headers)
        headers |= {"ETag": f'"{blob.etag}"', "Content-Type": "application/octet-stream"}
        size, range_header = len(blob.data), self.headers.get("Range")
        if range_header is None:
            return 200, headers, blob.data
        span = _parse_range(range_header, size)
        if span is None:
            raise HubError(416, "RangeNotSatisfiable", "Range not satisfiable", {"Content-Range": f"bytes */{size}"})
        first, last = span
        return 206, headers | {"Content-Range": f"bytes {first}-{last}/{size}"}, blob.data[first : last + 1]
