"""The content-addressed response store of a run directory (SQLite in WAL mode).

Every answer is committed before anyone uses it, so killing the process at any moment loses at most the requests
in flight, and a rerun sends only what is missing. One row per (request key, attempt): an attempt is either a paid
answer (``ok``: text, finish reason, token usage, estimated cost) or a request that got no answer (``error``: the
reason). The Batch API bookkeeping (local files, uploaded file ids, batch ids, states, custom ids) lives in the
same database, so that a crash after submitting resumes polling the same batches.

The store never holds credentials: request bodies are the chat-completion bodies only.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from syntriever_hf.llm.request import ChatRequest, Completion, canonical_json

__all__ = ["STORE_FILENAME", "AttemptRecord", "BatchItem", "BatchJob", "ResponseStore", "StoreTotals"]

logger = logging.getLogger(__name__)

#: File name of the store inside a run directory.
STORE_FILENAME = "responses.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    text TEXT,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,
    error TEXT,
    mode TEXT NOT NULL,
    started_at REAL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (key, attempt)
);
CREATE TABLE IF NOT EXISTS batch_jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    local_file TEXT NOT NULL,
    n_requests INTEGER NOT NULL,
    input_file_id TEXT,
    batch_id TEXT UNIQUE,
    status TEXT NOT NULL,
    output_file_id TEXT,
    error_file_id TEXT,
    ingested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_items (
    custom_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    job_id INTEGER NOT NULL REFERENCES batch_jobs (job_id)
);
CREATE INDEX IF NOT EXISTS batch_items_by_job ON batch_items (job_id);
CREATE INDEX IF NOT EXISTS batch_items_by_key ON batch_items (key, attempt);
"""


@dataclass(frozen=True)
class AttemptRecord:
    """One stored attempt of a request: a paid answer (``status == "ok"``) or a failure without answer."""

    key: str
    attempt: int
    status: str
    text: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    error: str | None
    mode: str
    finished_at: float

    def completion(self) -> Completion:
        """The answer of an ``ok`` attempt as a :class:`Completion`."""
        if self.status != "ok" or self.text is None:
            raise ValueError(f"attempt {self.attempt} of {self.key[:12]} has no answer (status {self.status!r})")
        return Completion(self.text, self.finish_reason, self.prompt_tokens, self.completion_tokens)


@dataclass(frozen=True)
class StoreTotals:
    """Everything the store has recorded: requests made (answered or not), tokens and estimated cost."""

    requests: int
    answered: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class BatchJob:
    """One Batch API job: a local JSONL file, its uploaded file id, the batch id and the last known state."""

    job_id: int
    local_file: str
    n_requests: int
    input_file_id: str | None
    batch_id: str | None
    status: str
    output_file_id: str | None
    error_file_id: str | None
    ingested: bool


@dataclass(frozen=True)
class BatchItem:
    """One line of a batch: its ``custom_id`` and the request attempt it carries."""

    custom_id: str
    key: str
    attempt: int
    job_id: int


class ResponseStore:
    """SQLite store of requests, attempts and Batch API jobs; see the module docstring.

    Args:
        path: the database file, or a run directory (then ``<dir>/responses.sqlite3``); created if missing.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir() or not path.suffix:
            path.mkdir(parents=True, exist_ok=True)
            path = path / STORE_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._connection = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.executescript(_SCHEMA)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ResponseStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield self._connection
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    # -- requests and attempts -------------------------------------------------------------------------------

    @staticmethod
    def _insert_request(connection: sqlite3.Connection, request: ChatRequest) -> None:
        connection.execute(
            "INSERT OR IGNORE INTO requests (key, body, prompt_version, created_at) VALUES (?, ?, ?, ?)",
            (request.key, canonical_json(request.body()), request.prompt_version, time.time()),
        )

    def attempts(self, key: str) -> list[AttemptRecord]:
        """All stored attempts of a request, oldest first."""
        rows = self._connection.execute(
            "SELECT key, attempt, status, text, finish_reason, prompt_tokens, completion_tokens, cost_usd, error, "
            "mode, finished_at FROM attempts WHERE key = ? ORDER BY attempt",
            (key,),
        ).fetchall()
        return [AttemptRecord(*row) for row in rows]

    def next_attempt(self, key: str) -> int:
        """The attempt number the next attempt of ``key`` gets (attempts and batch lines both count)."""
        row = self._connection.execute(
            "SELECT MAX(a) FROM (SELECT MAX(attempt) AS a FROM attempts WHERE key = ? "
            "UNION ALL SELECT MAX(attempt) FROM batch_items WHERE key = ?)",
            (key, key),
        ).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def record_answer(
        self,
        request: ChatRequest,
        attempt: int,
        completion: Completion,
        *,
        cost_usd: float | None,
        mode: str,
        started_at: float | None = None,
    ) -> None:
        """Commit a paid answer (before it is used)."""
        with self.transaction() as connection:
            self._insert_request(connection, request)
            connection.execute(
                "INSERT INTO attempts (key, attempt, status, text, finish_reason, prompt_tokens, completion_tokens, "
                "cost_usd, error, mode, started_at, finished_at) VALUES (?, ?, 'ok', ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                (request.key, attempt, completion.text, completion.finish_reason, completion.prompt_tokens,
                 completion.completion_tokens, cost_usd, mode, started_at, time.time()),
            )

    def record_error(
        self, request: ChatRequest, attempt: int, reason: str, *, mode: str, started_at: float | None = None
    ) -> None:
        """Commit an attempt that got no usable answer (transport error, failed batch line), with its reason."""
        with self.transaction() as connection:
            self._insert_request(connection, request)
            connection.execute(
                "INSERT INTO attempts (key, attempt, status, error, mode, started_at, finished_at) "
                "VALUES (?, ?, 'error', ?, ?, ?, ?)",
                (request.key, attempt, reason, mode, started_at, time.time()),
            )

    def request(self, key: str) -> ChatRequest | None:
        """The stored request of ``key`` (rebuilt from its body and prompt version), if it was ever sent."""
        row = self._connection.execute("SELECT body, prompt_version FROM requests WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        body = json.loads(row[0])
        request = ChatRequest(
            model=body.pop("model"), messages=tuple(body.pop("messages")),
            response_format=body.pop("response_format", None), prompt_version=row[1], sampling=body,
        )
        if request.key != key:
            raise ValueError(f"{self.path}: the stored request {key[:12]} no longer hashes to its key")
        return request

    def totals(self) -> StoreTotals:
        """Requests made (answered or not), answers, tokens and estimated cost recorded so far."""
        row = self._connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 'ok'), 0), COALESCE(SUM(prompt_tokens), 0), "
            "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cost_usd), 0.0) FROM attempts"
        ).fetchone()
        return StoreTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4]))

    # -- Batch API bookkeeping -------------------------------------------------------------------------------

    def add_batch_job(self, local_file: str, items: Iterable[tuple[str, ChatRequest, int]]) -> int:
        """Record a prepared batch file and its lines ``(custom_id, request, attempt)`` in one transaction."""
        now = time.time()
        with self.transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO batch_jobs (local_file, n_requests, status, created_at, updated_at) "
                "VALUES (?, 0, 'prepared', ?, ?)",
                (local_file, now, now),
            )
            job_id = int(cursor.lastrowid)
            count = 0
            for custom_id, request, attempt in items:
                self._insert_request(connection, request)
                connection.execute(
                    "INSERT INTO batch_items (custom_id, key, attempt, job_id) VALUES (?, ?, ?, ?)",
                    (custom_id, request.key, attempt, job_id),
                )
                count += 1
            connection.execute("UPDATE batch_jobs SET n_requests = ? WHERE job_id = ?", (count, job_id))
        return job_id

    def update_batch_job(self, job_id: int, **fields: object) -> None:
        """Set some of ``input_file_id``, ``batch_id``, ``status``, ``output_file_id``, ``error_file_id``."""
        allowed = {"input_file_id", "batch_id", "status", "output_file_id", "error_file_id"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"update_batch_job: unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._connection.execute(
            f"UPDATE batch_jobs SET {assignments}, updated_at = ? WHERE job_id = ?",
            (*fields.values(), time.time(), job_id),
        )

    def batch_jobs(self, *, ingested: bool | None = None) -> list[BatchJob]:
        """Batch jobs in creation order, optionally only the (not) ingested ones."""
        query = (
            "SELECT job_id, local_file, n_requests, input_file_id, batch_id, status, output_file_id, error_file_id, "
            "ingested FROM batch_jobs"
        )
        parameters: tuple[object, ...] = ()
        if ingested is not None:
            query += " WHERE ingested = ?"
            parameters = (int(ingested),)
        rows = self._connection.execute(query + " ORDER BY job_id", parameters).fetchall()
        return [BatchJob(*row[:8], ingested=bool(row[8])) for row in rows]

    def batch_items(self, job_id: int) -> list[BatchItem]:
        """The lines of a batch job."""
        rows = self._connection.execute(
            "SELECT custom_id, key, attempt, job_id FROM batch_items WHERE job_id = ? ORDER BY rowid",
            (job_id,),
        ).fetchall()
        return [BatchItem(*row) for row in rows]

    def pending_batch_keys(self) -> set[str]:
        """Keys carried by batch jobs that are not ingested yet (they must not be submitted again)."""
        rows = self._connection.execute(
            "SELECT DISTINCT i.key FROM batch_items i JOIN batch_jobs j ON i.job_id = j.job_id WHERE j.ingested = 0"
        ).fetchall()
        return {row[0] for row in rows}

    def mark_ingested(self, connection: sqlite3.Connection, job_id: int) -> None:
        """Mark a job ingested, inside the transaction that stored its results."""
        connection.execute(
            "UPDATE batch_jobs SET ingested = 1, updated_at = ? WHERE job_id = ?", (time.time(), job_id)
        )

    @staticmethod
    def insert_attempt(connection: sqlite3.Connection, record: AttemptRecord) -> None:
        """Insert an attempt inside an open transaction (used when ingesting a batch's results)."""
        connection.execute(
            "INSERT OR IGNORE INTO attempts (key, attempt, status, text, finish_reason, prompt_tokens, "
            "completion_tokens, cost_usd, error, mode, started_at, finished_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
            (record.key, record.attempt, record.status, record.text, record.finish_reason, record.prompt_tokens,
             record.completion_tokens, record.cost_usd, record.error, record.mode, record.finished_at),
        )
