"""The fake Hub itself: the protocol details that huggingface_hub depends on, and its command-line mode."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.hub_server import FakeHub

TOKEN = "hf_fakeServerToken42"
SERVER_SCRIPT = Path(__file__).parents[1] / "fakes" / "hub_server.py"


def call(url: str, method: str = "GET", payload: object = None, token: str | None = None) -> tuple[int, dict, object]:
    """Status, headers and decoded JSON body of one request (errors included)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    with FakeHub(tmp_path / "storage", token=TOKEN) as server:
        yield server
    assert server.errors == []


def test_writes_need_the_token(hub: FakeHub) -> None:
    create = {"name": "repo", "organization": "org", "type": "model"}
    assert call(f"{hub.url}/api/repos/create", "POST", create)[0] == 401
    assert call(f"{hub.url}/api/repos/create", "POST", create, token="hf_wrong")[0] == 401
    status, _, body = call(f"{hub.url}/api/repos/create", "POST", create, token=TOKEN)
    assert (status, body["url"]) == (200, f"{hub.url}/org/repo")
    assert call(f"{hub.url}/api/repos/create", "POST", create, token=TOKEN)[0] == 409


def test_missing_things_answer_404_with_the_hub_error_codes(hub: FakeHub) -> None:
    status, headers, _ = call(f"{hub.url}/api/datasets/org/absent")
    assert (status, headers["X-Error-Code"]) == (404, "RepoNotFound")
    call(f"{hub.url}/api/repos/create", "POST", {"name": "d", "organization": "org", "type": "dataset"}, TOKEN)
    status, headers, _ = call(f"{hub.url}/api/datasets/org/d/tree/main/data")  # a folder that does not exist
    assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound")
    status, _, tree = call(f"{hub.url}/api/datasets/org/d/tree/main")
    assert (status, [entry["path"] for entry in tree]) == (200, [".gitattributes"])
    status, headers, _ = call(f"{hub.url}/api/datasets/org/d/revision/{'0' * 40}")
    assert (status, headers["X-Error-Code"]) == (404, "RevisionNotFound")


def test_command_line_server_logs_headers_outside_its_storage(tmp_path: Path) -> None:
    root, log = tmp_path / "storage", tmp_path / "requests.jsonl"
    command = [sys.executable, str(SERVER_SCRIPT), "--port", "0", "--root", str(root), "--token", TOKEN,
               "--log", str(log)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        first_line = server.stdout.readline()
        url = first_line.removeprefix("fake Hub listening on ").strip()
        assert url.startswith("http://127.0.0.1:"), first_line
        create = {"name": "m", "organization": "org", "type": "model"}
        assert call(f"{url}/api/repos/create", "POST", create, TOKEN)[0] == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries[-1]["path"] == "/api/repos/create"
    assert entries[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    stored = [path for path in root.rglob("*") if path.is_file()]
    assert stored and all(TOKEN.encode() not in path.read_bytes() for path in stored)
