"""Batch mode: the same requests through the OpenAI Batch API (half price, answers within the completion window).

A run:

1. resumes first: batches recorded by an earlier (killed) run and not yet ingested are submitted if the crash
   came before that, then polled to the end and ingested, so nothing already submitted is submitted again;
2. writes the requests the store cannot resolve into JSONL files with stable ``custom_id`` s
   (``<first 32 hex digits of the key>-<attempt>``), split at the API's limits (50,000 lines or 200 MB per file);
   each file and its lines are recorded before upload, the uploaded file id right after upload, the batch id
   right after creation;
3. polls with a doubling interval, downloads the output and error files and ingests every line in one
   transaction (answers are ``ok`` attempts priced at the batch discount; failed or expired lines are ``error``
   attempts), so a crash while ingesting simply ingests again;
4. submits again, in a new round, what is still unresolved: answers that broke the format (a new attempt, up to
   ``max_attempts``) and lines that failed or expired (``max_resubmissions`` times in one run, then recorded as
   failed with the reason).

A crash between creating a batch and recording its id is covered too: on resume, a recorded upload without a
batch id is looked up among the account's batches by its input file id before a new batch is created.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from syntriever_hf.llm.budget import Reservation
from syntriever_hf.llm.engine import Engine, Outcome, Parser, RunReport, is_fatal_error, resolve
from syntriever_hf.llm.progress import ProgressReporter
from syntriever_hf.llm.request import ChatRequest, MalformedResponseError, completion_from_body
from syntriever_hf.llm.store import AttemptRecord, BatchItem, BatchJob

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["BATCH_ENDPOINT", "BatchRunner", "custom_id"]

logger = logging.getLogger(__name__)

BATCH_ENDPOINT = "/v1/chat/completions"
TERMINAL_STATES = frozenset({"completed", "failed", "expired", "cancelled"})


def custom_id(key: str, attempt: int) -> str:
    """The stable ``custom_id`` of one attempt of a request."""
    return f"{key[:32]}-{attempt}"


class _FileWriter:
    """Fills JSONL batch files up to the line and byte limits; ``add`` returns a full file's lines."""

    def __init__(self, directory: Path, max_lines: int, max_bytes: int) -> None:
        self.directory = directory
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.items: list[tuple[str, ChatRequest, int]] = []
        self.size = 0
        self.path: Path | None = None
        self._handle = None

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"input-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.jsonl"
        self._handle = self.path.open("wb")
        self.items, self.size = [], 0

    def add(self, request: ChatRequest, attempt: int) -> tuple[Path, list[tuple[str, ChatRequest, int]]] | None:
        """Add a line; when it does not fit, the current file is closed and returned, and the line starts a new one."""
        line_id = custom_id(request.key, attempt)
        line = (json.dumps({"custom_id": line_id, "method": "POST", "url": BATCH_ENDPOINT, "body": request.body()},
                           ensure_ascii=False) + "\n").encode("utf-8")
        if len(line) > self.max_bytes:
            raise ValueError(f"one batch line is {len(line)} bytes, above the file limit of {self.max_bytes} bytes")
        full = None
        if self._handle is not None and (len(self.items) >= self.max_lines or self.size + len(line) > self.max_bytes):
            full = self.close()
        if self._handle is None:
            self._open()
        self._handle.write(line)
        self.items.append((line_id, request, attempt))
        self.size += len(line)
        return full

    def close(self) -> tuple[Path, list[tuple[str, ChatRequest, int]]] | None:
        """Close the current file and return it with its lines (``None`` when nothing was written)."""
        if self._handle is None:
            return None
        self._handle.close()
        self._handle = None
        assert self.path is not None
        return self.path, self.items


class BatchRunner:
    """One batch-mode run of the engine (see the module docstring)."""

    def __init__(self, engine: Engine, client: AsyncOpenAI, progress: ProgressReporter, report: RunReport) -> None:
        self.engine = engine
        self.store = engine.store
        self.settings = engine.settings.batch
        self.client = client
        self.progress = progress
        self.report = report
        self.unanswered: Counter[str] = Counter()
        self.directory = self.store.path.parent / "batches"

    # -- the run ---------------------------------------------------------------------------------------------

    async def run(self, requests: Iterable[ChatRequest], parse: Parser) -> None:
        resumed = self.store.batch_jobs(ingested=False)
        if resumed:
            logger.info("Resuming %d batch job(s) of an earlier run before submitting anything", len(resumed))
            for job in resumed:
                self._hold_budget(self.store.batch_items(job.job_id))
            await self._complete_jobs(resumed, finalize=None)
        jobs = await self._first_round(requests, parse)
        while jobs:
            retry: list[str] = []
            await self._complete_jobs(jobs, finalize=(parse, retry))
            jobs = await self._submit_keys(retry, parse)

    async def _first_round(self, requests: Iterable[ChatRequest], parse: Parser) -> list[BatchJob]:
        """Resolve every distinct request from the store, and write the rest into batch files as it goes."""
        return await self._submit_requests(self._pending_first_round(requests, parse))

    def _pending_first_round(self, requests: Iterable[ChatRequest], parse: Parser) -> Iterator[ChatRequest]:
        """The distinct requests the store cannot answer and the budget admits (the others are finished here)."""
        seen: set[str] = set()
        for request in requests:
            if request.key in seen:
                continue
            seen.add(request.key)
            self.engine.budget.check(request)
            state = resolve(request.key, self.store.attempts(request.key), parse, self.engine.settings.max_attempts)
            if state.status != "pending":
                self._finish(state, cached=True)
            elif self._admit(request, state):
                yield request

    async def _submit_keys(self, keys: list[str], parse: Parser) -> list[BatchJob]:
        """A follow-up round for requests that came back unanswered or unparseable."""
        return await self._submit_requests(self._pending_retries(keys, parse))

    def _pending_retries(self, keys: list[str], parse: Parser) -> Iterator[ChatRequest]:
        for key in keys:
            request = self.store.request(key)
            assert request is not None, f"request {key[:12]} vanished from the store"
            state = resolve(key, self.store.attempts(key), parse, self.engine.settings.max_attempts)
            if self._admit(request, state):
                yield request

    async def _submit_requests(self, requests: Iterable[ChatRequest]) -> list[BatchJob]:
        """Write ``requests`` (each as its next attempt) into batch files, submitting each file once it is full."""
        writer = self._writer()
        jobs: list[BatchJob] = []
        for request in requests:
            full = writer.add(request, self.store.next_attempt(request.key))
            if full is not None:
                jobs.append(await self._submit_file(*full))
        last = writer.close()
        if last is not None:
            jobs.append(await self._submit_file(*last))
        return jobs

    def _writer(self) -> _FileWriter:
        return _FileWriter(self.directory, self.settings.max_requests_per_file, self.settings.max_bytes_per_file)

    def _admit(self, request: ChatRequest, state: Outcome) -> bool:
        """Whether a pending request goes into a batch now; if not, it is finished as failed with the reason."""
        if self.unanswered[request.key] > self.settings.max_resubmissions:
            self._finish(Outcome(request.key, "failed", reason=state.reason, answers=state.answers), cached=False)
            return False
        if self.engine.budget.try_reserve(request) is None:
            reason = self.engine.budget.exhausted_reason
            self._finish(Outcome(request.key, "failed", reason=reason, answers=state.answers), cached=False)
            return False
        self.report.requests_sent += 1
        self.progress.started()
        return True

    def _finish(self, outcome: Outcome, *, cached: bool) -> None:
        if outcome.status == "failed" and outcome.reason:
            self.engine.record_run_failure(outcome.key, outcome.reason)
        self.report.add(outcome, cached=cached)
        self.progress.finished(failed=outcome.status == "failed")

    def _hold_budget(self, items: list[BatchItem]) -> None:
        """Count the lines of a resumed batch against the budget (they are submitted already)."""
        for item in items:
            request = self.store.request(item.key)
            if request is not None:
                self.engine.budget.requests += 1
                self.engine.budget.reserved_usd += self.engine.budget.worst_case_usd(request)

    # -- submission ------------------------------------------------------------------------------------------

    async def _submit_file(self, path: Path, items: list[tuple[str, ChatRequest, int]]) -> BatchJob:
        job_id = self.store.add_batch_job(str(path), items)
        logger.info("Batch file %s: %d request(s)", path.name, len(items))
        return await self._ensure_submitted(self._job(job_id))

    def _job(self, job_id: int) -> BatchJob:
        return next(job for job in self.store.batch_jobs() if job.job_id == job_id)

    async def _ensure_submitted(self, job: BatchJob) -> BatchJob:
        """Upload the file and create the batch, recording each id as soon as it exists."""
        if job.batch_id is not None:
            return job
        input_file_id = job.input_file_id
        if input_file_id is None:
            uploaded = await self.client.files.create(file=Path(job.local_file), purpose="batch")
            input_file_id = uploaded.id
            self.store.update_batch_job(job.job_id, input_file_id=input_file_id, status="uploaded")
            batch = None
        else:
            batch = await self._find_batch(input_file_id)
        if batch is None:
            batch = await self.client.batches.create(
                input_file_id=input_file_id, endpoint=BATCH_ENDPOINT,
                completion_window=self.settings.completion_window,
                metadata={"created_by": "syntriever-hf", "job": str(job.job_id)},
            )
        self.store.update_batch_job(job.job_id, batch_id=batch.id, status=batch.status)
        logger.info("Batch %s created for %s (%d request(s))", batch.id, Path(job.local_file).name, job.n_requests)
        return self._job(job.job_id)

    async def _find_batch(self, input_file_id: str):
        """A batch created from ``input_file_id`` by a run that crashed before recording it, if any."""
        async for batch in self.client.batches.list(limit=100):
            if batch.input_file_id == input_file_id:
                logger.info("Found batch %s for the already uploaded file %s", batch.id, input_file_id)
                return batch
        return None

    # -- polling and ingestion -------------------------------------------------------------------------------

    async def _complete_jobs(self, jobs: list[BatchJob], *, finalize: tuple[Parser, list[str]] | None) -> None:
        """Poll until every job ended, ingesting each as it ends; ``finalize`` decides its requests' fate."""
        active = {job.job_id: await self._ensure_submitted(job) for job in jobs}
        delay = self.settings.poll_interval
        while active:
            for job in list(active.values()):
                batch = await self._poll(job)
                if batch is not None and batch.status in TERMINAL_STATES:
                    items = await self._ingest(job, batch)
                    if finalize is not None:
                        self._decide(items, *finalize)
                    del active[job.job_id]
            if active:
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.settings.max_poll_interval)

    async def _poll(self, job: BatchJob):
        import openai

        try:
            batch = await self.client.batches.retrieve(job.batch_id)
        except openai.OpenAIError as error:
            if is_fatal_error(error):
                raise
            logger.warning("Polling batch %s failed (%s); polling again later", job.batch_id, type(error).__name__)
            return None
        self.store.update_batch_job(job.job_id, status=batch.status, output_file_id=batch.output_file_id,
                                    error_file_id=batch.error_file_id)
        counts = batch.request_counts
        logger.debug("Batch %s: %s (%s)", batch.id, batch.status, counts)
        return batch

    async def _download(self, file_id: str | None) -> list[str]:
        if not file_id:
            return []
        content = await self.client.files.content(file_id)
        return [line for line in content.text.splitlines() if line.strip()]

    async def _ingest(self, job: BatchJob, batch) -> list[BatchItem]:
        """Store every line's answer or error in one transaction, and mark the job ingested."""
        items = {item.custom_id: item for item in self.store.batch_items(job.job_id)}
        records: dict[str, AttemptRecord] = {}
        for line in [*await self._download(batch.output_file_id), *await self._download(batch.error_file_id)]:
            record = self._record(line, items)
            if record is not None:
                records[record[0]] = record[1]
        errors = "; ".join(f"{e.code}: {e.message}" for e in (batch.errors.data or [])) if batch.errors else ""
        for line_id, item in items.items():
            if line_id not in records:
                reason = f"batch {batch.id} ended {batch.status} without a result for this request"
                records[line_id] = _error_record(item, reason + (f" ({errors})" if errors else ""))
        with self.store.transaction() as connection:
            for record in records.values():
                self.store.insert_attempt(connection, record)
            self.store.mark_ingested(connection, job.job_id)
        self._account(items, records)
        answered = sum(record.status == "ok" for record in records.values())
        logger.info("Batch %s ended %s: %d answer(s), %d error(s)", batch.id, batch.status, answered,
                    len(records) - answered)
        return list(items.values())

    def _record(self, line: str, items: dict[str, BatchItem]) -> tuple[str, AttemptRecord] | None:
        """One output/error line as an attempt record (``None`` for a line of another batch)."""
        try:
            result = json.loads(line)
        except ValueError:
            logger.warning("Skipping a malformed line in a batch result file: %r", line[:80])
            return None
        item = items.get(result.get("custom_id")) if isinstance(result, dict) else None
        if item is None:
            return None
        response = result.get("response") or {}
        error = result.get("error")
        if response.get("status_code") == 200 and not error:
            try:
                completion = completion_from_body(response.get("body"))
            except MalformedResponseError as problem:
                return item.custom_id, _error_record(item, f"malformed batch answer: {problem}")
            request = self.store.request(item.key)
            cost = self.engine.cost(request, completion) if request is not None else None
            return item.custom_id, AttemptRecord(
                item.key, item.attempt, "ok", completion.text, completion.finish_reason, completion.prompt_tokens,
                completion.completion_tokens, cost, None, "batch", time.time(),
            )
        if error:
            reason = f"batch line error {error.get('code')}: {error.get('message')}"
        else:
            body_error = (response.get("body") or {}).get("error") or {}
            reason = f"batch line HTTP {response.get('status_code')}: {body_error.get('message', 'no message')}"
        return item.custom_id, _error_record(item, reason)

    def _account(self, items: dict[str, BatchItem], records: dict[str, AttemptRecord]) -> None:
        """Settle the budget, the report and the progress bar for an ingested job."""
        for line_id, record in records.items():
            request = self.store.request(items[line_id].key)
            worst = self.engine.budget.worst_case_usd(request) if request is not None else 0.0
            self.engine.budget.settle(Reservation(worst), record.cost_usd)
            if record.status == "ok":
                self.report.add_answer(record.completion(), record.cost_usd)
                self.progress.answered(record.prompt_tokens + record.completion_tokens, record.cost_usd)
            else:
                self.unanswered[record.key] += 1
                self.progress.unanswered()

    def _decide(self, items: list[BatchItem], parse: Parser, retry: list[str]) -> None:
        """Finish the requests of an ingested job, or queue them for the next round."""
        for item in items:
            state = resolve(item.key, self.store.attempts(item.key), parse, self.engine.settings.max_attempts)
            if state.status != "pending":
                self._finish(state, cached=False)
            elif self.unanswered[item.key] > self.settings.max_resubmissions:
                self._finish(Outcome(item.key, "failed", reason=state.reason, answers=state.answers), cached=False)
            else:
                retry.append(item.key)


def _error_record(item: BatchItem, reason: str) -> AttemptRecord:
    from syntriever_hf.llm.client import redact

    return AttemptRecord(item.key, item.attempt, "error", None, None, 0, 0, None, redact(reason)[:500], "batch",
                         time.time())
