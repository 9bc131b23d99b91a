"""A local OpenAI-compatible server for tests and benchmarks: chat completions, files and the Batch API.

The real ``openai`` client talks to it over HTTP on 127.0.0.1. Answers are deterministic functions of the prompt
(see :func:`default_answer`), so a test can check what the engine parsed. Faults are injected per request from a
seeded plan: 429 with ``Retry-After``, 500, dropped connections, answers slower than the client's timeout,
malformed JSON bodies, and answers that break the expected format. Batches move ``validating -> in_progress ->
<outcome>`` after a number of polls (and seconds), where the outcome of each created batch comes from
``batch_outcomes``: ``completed``, ``failed``, ``expired`` (half the lines answered, the rest in the error file) or
``error_file`` (completed, with every other line in the error file).

Every chat request and every file/batch call is appended to ``log`` (and to ``log_path`` as JSON lines when given):
chat requests by the sha256 of their canonical messages (:func:`messages_sha`), batch input files with the same
hash for each line.

In-process: ``with FakeOpenAIServer(latency=0.01) as server: ...`` (``server.base_url``); as a subprocess:
``python tests/fakes/openai_server.py --latency 0.2`` prints ``PORT <n>`` and serves until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import email.policy
import hashlib
import json
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "FAULT_KINDS",
    "FakeOpenAIServer",
    "FaultPlan",
    "default_answer",
    "messages_sha",
    "negative_verdict",
    "positive_verdict",
]

FAULT_KINDS = ("429", "500", "drop", "slow", "malformed", "bad_format")
#: A query containing this marker always gets an answer that breaks the expected format.
ALWAYS_BAD = "[[always-bad]]"


def messages_sha(messages: list[dict]) -> str:
    """sha256 of the canonical JSON of a request's messages: the identity the request log records."""
    text = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def positive_verdict(query: str) -> str:
    """The verdict the fake gives a positive passage of ``query``: "no" for about one query in five."""
    return "no" if _digest(query) % 5 == 0 else "yes"


def negative_verdict(query: str) -> str:
    """The verdict the fake gives a negative passage of ``query``: "yes" (relevant after all) for one in seven."""
    return "yes" if _digest(query) % 7 == 0 else "no"


def _between(text: str, start: str, end: str | None) -> str:
    begin = text.index(start) + len(start)
    stop = text.index(end, begin) if end else len(text)
    return text[begin:stop].strip()


def default_answer(body: dict, *, bad: bool = False) -> str:
    """A deterministic answer to one of the stage-1 prompts (or an echo), in JSON when ``response_format`` asks.

    Positive passages start with "Evidence about"; a verification judges them by :func:`positive_verdict` and any
    other passage by :func:`negative_verdict`. ``bad`` gives an answer that breaks the expected format.
    """
    prompt = str(body["messages"][-1].get("content", ""))
    structured = "response_format" in body
    if "Is the passage relevant" in prompt:
        query = _between(prompt, "Query:", "\n\nPassage:")
        passage = _between(prompt, "Passage:", "\n\nIs the passage relevant")
        judge = positive_verdict if passage.startswith("Evidence about") else negative_verdict
        answer, key = judge(query), "verdict"
        if bad:
            return '{"verdict": "maybe"}' if structured else "Maybe; it depends on the study."
    else:
        query = _between(prompt, "Query:", "\n") if "Query:" in prompt else prompt.split("\n")[0]
        if "Let's think step by step" in prompt:
            answer = f"Step 1: restate the claim {query}. Step 2: recall what is known. Step 3: weigh it."
        elif "plausible but irrelevant" in prompt:
            answer = f"Background on an adjacent topic, sharing words with {query} but not addressing it."
        elif "directly addresses the query" in prompt:
            answer = f"Evidence about {query}: studies report findings that bear on whether it holds."
        else:
            answer = f"echo {messages_sha(body['messages'])[:12]}"
        key = "text"
        if bad:
            return '{"text": ' if structured else ""
    return json.dumps({key: answer}) if structured else answer


def _truncate(answer: str, max_tokens: int | None) -> tuple[str, str, int]:
    words = answer.split(" ")
    if max_tokens is not None and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "length", max_tokens
    return answer, "stop", len(words)


def chat_completion(body: dict, answer: str) -> dict:
    """A chat-completion object for ``answer`` (truncated to ``max_tokens`` words, then ``finish_reason=length``)."""
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    text, finish_reason, completion_tokens = _truncate(answer, limit)
    prompt_tokens = sum(len(str(m.get("content", "")).split()) + 4 for m in body["messages"])
    return {
        "id": f"chatcmpl-{messages_sha(body['messages'])[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "finish_reason": finish_reason, "logprobs": None,
                     "message": {"role": "assistant", "content": text, "refusal": None}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


@dataclass
class FaultPlan:
    """Which chat requests fail and how: a seeded draw per (messages, occurrence), so retries draw again.

    Args:
        fraction: share of chat requests that get a fault.
        kinds: the faults to draw from (see ``FAULT_KINDS``).
        seed: the draw's seed.
        retry_after: seconds sent in ``Retry-After`` with a 429.
        slow_seconds: how long a "slow" answer takes (set it above the client's timeout).
    """

    fraction: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    retry_after: float = 0.05
    slow_seconds: float = 2.0

    def draw(self, identity: str, occurrence: int) -> str | None:
        rng = random.Random(f"{self.seed}:{identity}:{occurrence}")
        if rng.random() >= self.fraction:
            return None
        return self.kinds[rng.randrange(len(self.kinds))]


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    outcome: str
    created_at: float
    metadata: dict | None
    status: str = "validating"
    polls: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: dict | None = None
    counts: dict = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})

    def as_json(self) -> dict:
        return {
            "id": self.id, "object": "batch", "endpoint": self.endpoint, "input_file_id": self.input_file_id,
            "completion_window": self.completion_window, "status": self.status, "created_at": int(self.created_at),
            "output_file_id": self.output_file_id, "error_file_id": self.error_file_id, "errors": self.errors,
            "request_counts": self.counts, "metadata": self.metadata,
        }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: without this, each answer waits ~40 ms

    def log_message(self, format: str, *args: object) -> None:  # requests go to the fake's log instead
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            self.server.fake.route(self, method, urlsplit(self.path).path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status: int, payload: object = None, *, raw: bytes | None = None,
              content_type: str = "application/json", headers: dict[str, str] | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    fake: FakeOpenAIServer


class FakeOpenAIServer:
    """The fake endpoint; see the module docstring.

    Args:
        latency: seconds every chat answer (and file/batch call) takes.
        faults: the fault plan for chat requests (default: none).
        answer: ``(body, bad) -> text``; default :func:`default_answer`.
        batch_outcomes: outcomes of the batches in creation order (then ``completed``).
        batch_polls: polls a batch stays ``in_progress`` before it ends.
        batch_seconds: seconds a batch stays ``in_progress`` at least.
        log_path: also append the log to this JSON-lines file.
        api_key: when set, requests without ``Authorization: Bearer <api_key>`` get a 401.
        port: 0 for an ephemeral port.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        answer: Callable[..., str] = default_answer,
        batch_outcomes: list[str] | None = None,
        batch_polls: int = 1,
        batch_seconds: float = 0.0,
        log_path: str | Path | None = None,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.faults = faults or FaultPlan()
        self.answer = answer
        self.batch_outcomes = list(batch_outcomes or [])
        self.batch_polls = batch_polls
        self.batch_seconds = batch_seconds
        self.hold_batches = False
        self.log: list[dict[str, Any]] = []
        self._log_path = Path(log_path) if log_path else None
        self._lock = threading.RLock()
        self._occurrences: dict[str, int] = {}
        self._files: dict[str, tuple[str, str, bytes]] = {}
        self._batches: dict[str, _Batch] = {}
        self._counter = 0
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.fake = self
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- bookkeeping -----------------------------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> None:
        entry = {"time": time.time(), **entry}
        with self._lock:
            self.log.append(entry)
            if self._log_path is not None:
                with self._log_path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry) + "\n")

    def chat_log(self) -> list[dict[str, Any]]:
        """The log entries of chat-completion requests."""
        return [entry for entry in list(self.log) if entry["kind"] == "chat"]

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}-{self._counter:06d}"

    def _occurrence(self, identity: str) -> int:
        with self._lock:
            count = self._occurrences.get(identity, 0)
            self._occurrences[identity] = count + 1
            return count

    # -- routing ---------------------------------------------------------------------------------------------

    def route(self, handler: _Handler, method: str, path: str) -> None:
        if self.api_key is not None and handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            handler.read_body()
            error = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                               "code": "invalid_api_key"}}
            return handler.reply(401, error)
        if method == "POST" and path == "/v1/chat/completions":
            return self._chat(handler, json.loads(handler.read_body()))
        if method == "POST" and path == "/v1/files":
            return self._upload(handler)
        if method == "POST" and path == "/v1/batches":
            return self._create_batch(handler, json.loads(handler.read_body()))
        if method == "GET" and path == "/v1/batches":
            self.record({"kind": "batches.list"})
            batches = [batch.as_json() for batch in reversed(list(self._batches.values()))]
            return handler.reply(200, {"object": "list", "data": batches, "has_more": False})
        match = re.fullmatch(r"/v1/batches/([^/]+)", path)
        if method == "GET" and match:
            return self._retrieve_batch(handler, match.group(1))
        match = re.fullmatch(r"/v1/files/([^/]+)/content", path)
        if method == "GET" and match and match.group(1) in self._files:
            self.record({"kind": "files.content", "file_id": match.group(1)})
            return handler.reply(200, raw=self._files[match.group(1)][2], content_type="application/octet-stream")
        handler.read_body()
        handler.reply(404, {"error": {"message": f"no route {method} {path}", "type": "invalid_request_error"}})

    def _chat(self, handler: _Handler, body: dict) -> None:
        identity = messages_sha(body["messages"])
        fault = self.faults.draw(identity, self._occurrence(identity))
        prompt = str(body["messages"][-1].get("content", ""))
        if fault is None and ALWAYS_BAD in prompt:
            fault = "bad_format"
        self.record({"kind": "chat", "messages_sha": identity, "fault": fault})
        time.sleep(self.faults.slow_seconds if fault == "slow" else self.latency)
        if fault == "429":
            error = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
            return handler.reply(429, error, headers={"Retry-After": f"{self.faults.retry_after:g}"})
        if fault == "500":
            return handler.reply(500, {"error": {"message": "The server had an error", "type": "server_error"}})
        if fault == "drop":
            return handler.drop()
        completion = chat_completion(body, self.answer(body, bad=fault == "bad_format"))
        data = json.dumps(completion).encode("utf-8")
        handler.reply(200, raw=data[: len(data) // 2] if fault == "malformed" else data)

    def _upload(self, handler: _Handler) -> None:
        content_type = handler.headers.get("Content-Type", "")
        raw = handler.read_body()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
        filename, data = fields["file"]
        purpose = fields["purpose"][1].decode()
        file_id = self._next_id("file")
        self._files[file_id] = (filename or "upload.jsonl", purpose, data)
        lines = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        self.record({"kind": "files.create", "file_id": file_id, "purpose": purpose,
                     "custom_ids": [line["custom_id"] for line in lines],
                     "messages_sha": [messages_sha(line["body"]["messages"]) for line in lines]})
        handler.reply(200, self._file_object(file_id))

    def _file_object(self, file_id: str) -> dict:
        filename, purpose, data = self._files[file_id]
        return {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed"}

    def _create_batch(self, handler: _Handler, payload: dict) -> None:
        if payload.get("input_file_id") not in self._files:
            return handler.reply(400, {"error": {"message": "unknown input_file_id", "type": "invalid_request"}})
        outcome = self.batch_outcomes.pop(0) if self.batch_outcomes else "completed"
        batch = _Batch(self._next_id("batch"), payload["input_file_id"], payload["endpoint"],
                       payload["completion_window"], outcome, time.time(), payload.get("metadata"))
        self._batches[batch.id] = batch
        self.record({"kind": "batches.create", "batch_id": batch.id, "input_file_id": batch.input_file_id,
                     "outcome": outcome})
        handler.reply(200, batch.as_json())

    def _retrieve_batch(self, handler: _Handler, batch_id: str) -> None:
        batch = self._batches.get(batch_id)
        if batch is None:
            return handler.reply(404, {"error": {"message": f"no batch {batch_id}", "type": "invalid_request"}})
        with self._lock:
            batch.polls += 1
            if batch.status in ("validating", "in_progress"):
                batch.status = "in_progress"
                due = batch.polls > self.batch_polls and time.time() - batch.created_at >= self.batch_seconds
                if due and not self.hold_batches:
                    self._finish(batch)
        self.record({"kind": "batches.retrieve", "batch_id": batch_id, "status": batch.status})
        handler.reply(200, batch.as_json())

    def _finish(self, batch: _Batch) -> None:
        lines = [json.loads(line) for line in self._files[batch.input_file_id][2].decode().splitlines() if line]
        batch.counts["total"] = len(lines)
        if batch.outcome == "failed":
            batch.status = "failed"
            batch.errors = {"object": "list", "data": [{"code": "invalid_request", "message": "simulated failure"}]}
            return
        outputs, errors = [], []
        for index, line in enumerate(lines):
            answered = {"expired": index < len(lines) // 2, "error_file": index % 2 == 0}.get(batch.outcome, True)
            (outputs if answered else errors).append(self._batch_result(line, answered, batch.outcome))
        batch.counts.update(completed=len(outputs), failed=len(errors))
        batch.status = "expired" if batch.outcome == "expired" else "completed"
        batch.output_file_id = self._store_results(outputs, batch.id, "output")
        batch.error_file_id = self._store_results(errors, batch.id, "error")

    def _batch_result(self, line: dict, answered: bool, outcome: str) -> dict:
        result: dict[str, Any] = {"id": self._next_id("batch_req"), "custom_id": line["custom_id"]}
        if answered:
            identity = messages_sha(line["body"]["messages"])
            bad = self.faults.draw(identity, self._occurrence(identity)) == "bad_format"
            bad = bad or ALWAYS_BAD in str(line["body"]["messages"][-1].get("content", ""))
            body = chat_completion(line["body"], self.answer(line["body"], bad=bad))
            return {**result, "response": {"status_code": 200, "request_id": result["id"], "body": body},
                    "error": None}
        if outcome == "expired":
            error = {"code": "batch_expired", "message": "This request could not be executed before the "
                     "completion window expired."}
            return {**result, "response": None, "error": error}
        body = {"error": {"message": "The server had an error", "type": "server_error"}}
        return {**result, "response": {"status_code": 500, "request_id": result["id"], "body": body}, "error": None}

    def _store_results(self, results: list[dict], batch_id: str, kind: str) -> str | None:
        if not results:
            return None
        file_id = self._next_id("file")
        data = "".join(json.dumps(result) + "\n" for result in results).encode("utf-8")
        self._files[file_id] = (f"{batch_id}_{kind}.jsonl", f"batch_{kind}", data)
        return file_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the fake OpenAI-compatible API until killed.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-fraction", type=float, default=0.0)
    parser.add_argument("--log", default=None, help="append the request log to this JSON-lines file")
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(latency=args.latency, faults=FaultPlan(fraction=args.fault_fraction),
                              log_path=args.log, port=args.port)
    print(f"PORT {server.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server._server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
