"""A local Hugging Face Hub stand-in for push/reload tests: the real ``huggingface_hub``/``datasets`` code talks to it.

It speaks the subset of the Hub's HTTP protocol that ``create_repo``, ``create_commit``/``upload_folder`` (LFS
path: set ``HF_HUB_DISABLE_XET=1``), ``DatasetDict.push_to_hub``, ``hf_hub_download`` and ``load_dataset`` use, for
model and dataset repos on the ``main`` branch (older commits stay readable by their id). Repos live in ``root``:
file contents in ``objects/<sha256>``, each repo's commits in ``repos/<type>s/<org>/<name>.json``. Every request's
method, path and headers go to ``requests`` (in memory, or ``--log FILE`` as JSON lines), never under ``root``.

In-process: ``with FakeHub(root, token="hf_x") as hub: ...`` (``hub.url``); in a subprocess:
``python tests/fakes/hub_server.py --root DIR [--port N] [--token T] [--log FILE]`` (prints its URL first).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FakeHub"]

LFS_SUFFIXES = (".parquet", ".safetensors", ".bin", ".arrow", ".pt", ".onnx", ".h5", ".msgpack")
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()
_REPO = r"(?P<repo>[^/]+/[^/]+?)"
_API = re.compile(rf"^/api/(?P<type>model|dataset)s/{_REPO}(?:/(?P<action>revision|tree|preupload|commit)"
                  r"/(?P<rev>[^/]+)(?:/(?P<path>.+))?)?$")
_LFS_BATCH = re.compile(rf"^/(?:(?P<type>dataset)s/)?{_REPO}\.git/info/lfs/objects/batch$")
_RESOLVE = re.compile(rf"^/(?:(?P<type>dataset)s/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


def git_oid(data: bytes) -> str:
    """The git blob id of ``data`` (what the Hub reports as a regular file's oid and ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    """An error answer: HTTP status, the Hub's ``X-Error-Code`` and a message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # silence stderr; requests are logged instead
        pass

    def do_HEAD(self) -> None:
        self._dispatch()

    do_GET = do_POST = do_PUT = do_HEAD

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.hub.record({"method": self.command, "path": self.path, "headers": dict(self.headers)})
        try:
            with self.server.hub.lock:  # one request at a time: the repos' JSON files are read and rewritten
                self.server.hub.route(self, self.command, url.path)
        except HubError as error:
            self.reply(error.status, {"error": str(error)}, error_code=error.code)
        except Exception as error:  # a bug of this fake: answer 500 and keep it for the test to see
            self.server.hub.errors.append(f"{self.command} {self.path}: {error!r}")
            self.reply(500, {"error": repr(error)})

    def reply(self, status: int, payload: object = None, *, body: bytes | None = None,
              headers: dict[str, str] | None = None, error_code: str | None = None) -> None:
        data = body if body is not None else json.dumps(payload).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        if error_code:
            self.send_header("X-Error-Code", error_code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
    hub: FakeHub


class FakeHub:
    """A Hub-compatible HTTP server on 127.0.0.1.

    With ``token`` set, writes need ``Authorization: Bearer <token>``; reads never do (a private repo is recorded as
    private but stays readable).
    """

    def __init__(self, root: str | Path, *, port: int = 0, token: str | None = None, log_file: str | None = None):
        """Bind ``port`` (0: an ephemeral one) on 127.0.0.1; serving starts on ``with`` (``__enter__``)."""
        self.root, self.token, self.log_file = Path(root), token, log_file
        self.requests: list[dict] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.hub = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, entry: dict) -> None:
        self.requests.append(entry)
        if self.log_file:
            with open(self.log_file, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")

    def read(self, repo_id: str, path: str, *, repo_type: str = "model", revision: str = "main") -> bytes:
        """The stored content of ``path`` in a repo (for tests to inspect what was published)."""
        meta = self._snapshot(self._load(repo_type, repo_id), revision)["files"][path]
        return (self.root / "objects" / meta["sha256"]).read_bytes()

    # -- storage -------------------------------------------------------------------------------------------------
    def _repo_file(self, repo_type: str | None, repo: str) -> Path:
        return self.root / "repos" / f"{repo_type or 'model'}s" / f"{repo}.json"

    def _load(self, repo_type: str | None, repo: str) -> dict:
        path = self._repo_file(repo_type, repo)
        if not path.is_file():
            raise HubError(404, "RepoNotFound", f"Repository {repo} not found")
        return json.loads(path.read_text())

    def _snapshot(self, state: dict, rev: str) -> dict:
        for commit in reversed(state["commits"]):
            if rev in ("main", commit["oid"]):
                return commit
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")

    def _put_object(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "objects" / sha256).write_bytes(data)
        return sha256

    def _regular(self, data: bytes) -> dict:
        """Store a file committed inline (not through LFS) and return its metadata."""
        return {"oid": git_oid(data), "sha256": self._put_object(data), "size": len(data), "lfs": False}

    def _commit(self, repo_type: str, repo: str, state: dict, message: str, files: dict) -> dict:
        parent = state["commits"][-1]["oid"] if state["commits"] else ""
        oid = hashlib.sha1((parent + message + json.dumps(files, sort_keys=True)).encode()).hexdigest()
        state["commits"].append({"oid": oid, "message": message, "files": files})
        path = self._repo_file(repo_type, repo)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state, indent=1))
        return state["commits"][-1]

    @staticmethod
    def _entry(path: str, meta: dict) -> dict:
        entry = {"type": "file", "path": path, "size": meta["size"], "oid": meta["oid"]}
        if meta["lfs"]:
            entry["lfs"] = {"oid": meta["sha256"], "size": meta["size"], "pointerSize": 134}
        return entry

    def _entries(self, files: dict, folder: str, recursive: bool) -> list[dict]:
        prefix = f"{folder}/" if folder else ""
        entries: dict[str, dict] = {}
        for path, meta in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                sub = prefix + "/".join(parts[:depth])
                entries[sub] = {"type": "directory", "path": sub, "size": 0, "oid": git_oid(sub.encode())}
            if recursive or len(parts) == 1:
                entries[path] = self._entry(path, meta)
        if folder and not entries:
            raise HubError(404, "EntryNotFound", f"{folder} does not exist")
        return list(entries.values())

    # -- routes --------------------------------------------------------------------------------------------------
    def route(self, handler: _Handler, method: str, path: str) -> None:
        # LFS upload URLs stand for the Hub's pre-signed storage URLs: the client sends no token there
        writing = method in ("POST", "PUT") and not path.startswith(("/api/validate-yaml", "/api/whoami", "/_lfs/"))
        if writing and self.token and handler.headers.get("Authorization") != f"Bearer {self.token}":
            return handler.reply(401, {"error": "Invalid credentials in Authorization header"})
        if path == "/api/whoami-v2":
            return handler.reply(200, {"type": "user", "name": "fake-user", "orgs": [],
                                       "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
        if path == "/api/validate-yaml":
            return handler.reply(200, {"errors": [], "warnings": []})
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo(handler, json.loads(handler.body))
        if path.startswith("/_lfs/") and method == "PUT":
            if hashlib.sha256(handler.body).hexdigest() != path.removeprefix("/_lfs/"):
                return handler.reply(400, {"error": "sha256 mismatch"})
            self._put_object(handler.body)
            return handler.reply(200, {})
        for pattern, action in ((_API, self._api), (_LFS_BATCH, self._lfs_batch), (_RESOLVE, self._resolve)):
            if match := pattern.match(path):
                groups = {key: unquote(value) if value else value for key, value in match.groupdict().items()}
                return action(handler, **groups)
        raise HubError(404, "NotFound", f"no route for {method} {path}")

    def _create_repo(self, handler: _Handler, payload: dict) -> None:
        repo_type, repo = payload.get("type") or "model", f"{payload['organization']}/{payload['name']}"
        url = f"{self.url}/{'' if repo_type == 'model' else repo_type + 's/'}{repo}"
        if self._repo_file(repo_type, repo).is_file():
            return handler.reply(409, {"error": "You already created this repo", "url": url})
        state = {"private": payload.get("visibility") == "private", "commits": []}
        self._commit(repo_type, repo, state, "initial commit", {".gitattributes": self._regular(GITATTRIBUTES)})
        handler.reply(200, {"url": url, "name": repo})

    def _api(self, handler: _Handler, type: str, repo: str, action: str | None, rev: str | None,
             path: str | None) -> None:
        state = self._load(type, repo)
        if action == "commit":
            return self._apply_commit(handler, type, repo, rev or "main")
        files = self._snapshot(state, rev or "main")["files"]
        if action in (None, "revision"):
            commit = self._snapshot(state, rev or "main")
            return handler.reply(200, {"id": repo, "sha": commit["oid"], "private": state["private"],
                                       "siblings": [{"rfilename": name} for name in sorted(files)]})
        if action == "tree":
            recursive = handler.query.get("recursive", "").lower() in ("true", "1")
            return handler.reply(200, self._entries(files, path or "", recursive))
        if action == "preupload":
            modes = [{"path": f["path"], "shouldIgnore": False,
                      "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) or f["size"] > 10**7 else "regular",
                      "oid": (files.get(f["path"]) or {}).get("oid")}
                     for f in json.loads(handler.body)["files"]]
            return handler.reply(200, {"files": modes, "commitOid": self._snapshot(state, rev or "main")["oid"]})
        raise HubError(404, "NotFound", f"no route for {action}")

    def _apply_commit(self, handler: _Handler, repo_type: str, repo: str, rev: str) -> None:
        lines = [json.loads(line) for line in handler.body.decode().splitlines() if line.strip()]
        state = self._load(repo_type, repo)
        if rev != "main":
            return handler.reply(400, {"error": f"this fake Hub only commits to main, not {rev!r}"})
        head = state["commits"][-1]
        header = next(line["value"] for line in lines if line["key"] == "header")
        if header.get("parentCommit") not in (None, head["oid"]):
            return handler.reply(412, {"error": "A commit has happened since. Please refresh and try again."})
        files = dict(head["files"])
        for key, value in ((line["key"], line["value"]) for line in lines):
            if key == "file":
                files[value["path"]] = self._regular(base64.b64decode(value["content"]))
            elif key == "lfsFile":
                if not (self.root / "objects" / value["oid"]).is_file():
                    return handler.reply(422, {"error": f"LFS object {value['oid']} was never uploaded"})
                files[value["path"]] = {"oid": value["oid"], "sha256": value["oid"], "lfs": True,
                                        "size": (self.root / "objects" / value["oid"]).stat().st_size}
            elif key == "deletedFile":
                files.pop(value["path"])
            elif key == "deletedFolder":
                files = {p: m for p, m in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
        commit = self._commit(repo_type, repo, state, header["summary"], files)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        handler.reply(200, {"commitUrl": f"{self.url}/{prefix}{repo}/commit/{commit['oid']}",
                            "commitOid": commit["oid"], "pullRequestUrl": None})

    def _lfs_batch(self, handler: _Handler, type: str | None, repo: str) -> None:
        self._load(type, repo)
        objects = []
        for obj in json.loads(handler.body)["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not (self.root / "objects" / obj["oid"]).is_file():
                entry["actions"] = {"upload": {"href": f"{self.url}/_lfs/{obj['oid']}"}}
            objects.append(entry)
        handler.reply(200, {"transfer": "basic", "objects": objects},
                      headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _resolve(self, handler: _Handler, type: str | None, repo: str, rev: str, path: str) -> None:
        commit = self._snapshot(self._load(type, repo), rev)
        if path not in commit["files"]:
            raise HubError(404, "EntryNotFound", f"{path} does not exist")
        meta = commit["files"][path]
        data = (self.root / "objects" / meta["sha256"]).read_bytes()
        handler.reply(200, body=data, headers={"Content-Type": "application/octet-stream",
                                               "ETag": f'"{meta["oid"]}"', "X-Repo-Commit": commit["oid"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 (default): an ephemeral port")
    parser.add_argument("--root", required=True, help="folder holding the repos (created if missing)")
    parser.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on writes")
    parser.add_argument("--log", help="JSON-lines file of every request's method, path and headers")
    args = parser.parse_args()
    with FakeHub(args.root, port=args.port, token=args.token, log_file=args.log) as hub:
        print(f"fake Hub listening on {hub.url}", flush=True)  # the first line of stdout: parents read the port
        threading.Event().wait()


if __name__ == "__main__":
    main()
