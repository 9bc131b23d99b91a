"""Loading a recorded stage-1 synthetic dataset (LLM answers saved as JSON lines) into the synthetic schema.

A recorded folder (for example ``syntriever_hf/resources/synthetic/scifact``) holds two JSON-lines files listing
the same queries in the same order:

* ``stage1.jsonl``: ``{"query_id", "query", "positive", "negative", "cot"}``: the LLM's relevant passage, its
  plausible-but-irrelevant passage and its chain-of-thought text (``null`` when that request failed);
* ``verify.jsonl``: ``{"query_id", "positive_verdict", "negative_verdict"}``: exactly ``"yes"`` or ``"no"``
  (``null`` when the verification failed or was not run).

:func:`load_recorded_stage1` turns them into ``STAGE1_SYNTHETIC_FEATURES``, the rows the synthesis engine writes, so
that recorded and freshly synthesised data reach training through one path:
:func:`syntriever_hf.data.stage1.build_stage1_examples`, which applies the verification rules.

Reading is strict: a malformed line, a missing or unknown key, a verdict other than "yes"/"no"/null, a query text
that differs from the BEIR query, a duplicate id, or files that disagree on the queries raise
:class:`RecordedDataError` naming the file and line. A query id judged in an evaluation split, or not judged in the
training split, is refused: evaluation queries are never used for synthesis or training.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datasets import Dataset

from syntriever_hf.data.schema import EVALUATION_SPLITS, STAGE1_SYNTHETIC_FEATURES, VERDICTS

if TYPE_CHECKING:
    from syntriever_hf.data.beir import BeirDataset

__all__ = [
    "RECORDED_STAGE1_FILE",
    "RECORDED_VERIFY_FILE",
    "RecordedDataError",
    "load_recorded_stage1",
]

logger = logging.getLogger(__name__)

RECORDED_STAGE1_FILE = "stage1.jsonl"
RECORDED_VERIFY_FILE = "verify.jsonl"

_STAGE1_KEYS = ("query_id", "query", "positive", "negative", "cot")
_VERIFY_KEYS = ("query_id", "positive_verdict", "negative_verdict")


class RecordedDataError(ValueError):
    """A recorded synthetic file that breaks the format or the split rules; the message names file and line."""


def load_recorded_stage1(folder: str | Path, beir: BeirDataset, *, split: str = "train") -> Dataset:
    """Load ``stage1.jsonl`` + ``verify.jsonl`` of ``folder`` as stage-1 synthetic data (one row per query).

    Args:
        folder: The recorded dataset's folder.
        beir: The BEIR dataset the queries come from; ``gold_ids`` are its positives (score > 0) in ``split``.
        split: The training split whose queries the recording must use (an evaluation split is refused).

    Returns:
        A ``Dataset`` with ``STAGE1_SYNTHETIC_FEATURES``, in the order of the files.

    Raises:
        FileNotFoundError: a file is missing.
        RecordedDataError: a malformed line, the files disagree, or a query id is not a training query of ``split``.
    """
    folder = Path(folder)
    stage1_path, verify_path = folder / RECORDED_STAGE1_FILE, folder / RECORDED_VERIFY_FILE
    allowed = _allowed_query_ids(beir, split)
    stage1 = list(_read_records(stage1_path, _STAGE1_KEYS))
    verify = list(_read_records(verify_path, _VERIFY_KEYS))
    _check_same_queries(stage1, verify, stage1_path, verify_path)
    query_texts = beir.query_texts()
    gold = _positive_ids(beir.relevant_docs(split))
    rows = []
    for (line, record), (_, verdicts) in zip(stage1, verify, strict=True):
        where = f"{stage1_path}:{line}"
        query_id = _check_query(record, where, beir, split, allowed, query_texts)
        rows.append(_synthetic_row(record, verdicts, gold.get(query_id, []), f"{verify_path}:{line}"))
    dataset = Dataset.from_list(rows, features=STAGE1_SYNTHETIC_FEATURES)
    logger.info("Loaded %d recorded stage-1 rows from %s (%s split of %s).", len(dataset), folder, split, beir.name)
    return dataset


def _failures(record: dict[str, Any], verdicts: dict[str, Any]) -> list[str]:
    """The ``failures`` lines of a recorded row: one per missing answer, ``"<task>: <reason>"``."""
    failures = [f"{task}: no answer recorded" for task in ("positive", "negative", "cot") if record[task] is None]
    for task in ("positive", "negative"):
        if record[task] is not None and verdicts[f"{task}_verdict"] is None:
            failures.append(f"verify_{task}: no verdict recorded")
    return failures


def _allowed_query_ids(beir: BeirDataset, split: str) -> set[str]:
    if split in EVALUATION_SPLITS:
        raise RecordedDataError(
            f"split={split!r} is an evaluation split: recorded synthetic data must come from training queries. "
            f"Pass a training split of {beir.name} (its splits: {beir.splits})."
        )
    if not any(other in EVALUATION_SPLITS for other in beir.splits):
        logger.warning("%s has no evaluation split loaded (splits: %s): recorded query ids can only be checked "
                       "against the %r split.", beir.name, beir.splits, split)
    return set(beir.training_queries(split)["id"])


def _read_records(path: Path, keys: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` of a JSON-lines file whose objects have exactly ``keys``."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: a recorded stage-1 folder holds {RECORDED_STAGE1_FILE} and {RECORDED_VERIFY_FILE}."
        )
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            yield line_number, _parse_line(line, f"{path}:{line_number}", keys)


def _parse_line(line: str, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise RecordedDataError(
            f"{where}: malformed JSON ({error.msg} at column {error.colno}). Each line must be one JSON object "
            f"with the keys {list(keys)}."
        ) from None
    if not isinstance(record, dict) or set(record) != set(keys):
        found = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise RecordedDataError(f"{where}: expected a JSON object with exactly the keys {list(keys)}, got {found}.")
    if not isinstance(record["query_id"], str) or not record["query_id"]:
        raise RecordedDataError(f"{where}: query_id must be a non-empty string, got {record['query_id']!r}.")
    for key in keys[1:]:
        _check_value(key, record[key], where)
    return record


def _check_value(key: str, value: Any, where: str) -> None:
    if key.endswith("_verdict"):
        if value is not None and value not in VERDICTS:
            raise RecordedDataError(
                f"{where}: {key} is {value!r}; a verdict is exactly one of {list(VERDICTS)}, or null when the "
                "verification failed. Fix the value (answers are parsed strictly, never guessed)."
            )
    elif value is not None and not (isinstance(value, str) and value.strip()):
        raise RecordedDataError(
            f"{where}: {key} must be a non-empty string, or null when that request failed; got {value!r}."
        )


def _check_same_queries(
    stage1: list[tuple[int, dict[str, Any]]],
    verify: list[tuple[int, dict[str, Any]]],
    stage1_path: Path,
    verify_path: Path,
) -> None:
    """Both files list the same query ids, once each, in the same order."""
    seen: dict[str, int] = {}
    for line, record in stage1:
        if record["query_id"] in seen:
            raise RecordedDataError(
                f"{stage1_path}:{line}: duplicate query_id {record['query_id']!r} (first at line "
                f"{seen[record['query_id']]}). Keep one row per query."
            )
        seen[record["query_id"]] = line
    for (line, record), (verify_line, verdicts) in zip(stage1, verify, strict=False):
        if record["query_id"] != verdicts["query_id"]:
            raise RecordedDataError(
                f"{verify_path}:{verify_line}: query_id {verdicts['query_id']!r}, but {stage1_path}:{line} has "
                f"{record['query_id']!r}: the two files must list the same queries in the same order."
            )
    if len(stage1) != len(verify):
        raise RecordedDataError(
            f"{stage1_path} has {len(stage1)} rows but {verify_path} has {len(verify)}: every query needs one "
            "line in each file."
        )


def _check_query(
    record: dict[str, Any],
    where: str,
    beir: BeirDataset,
    split: str,
    allowed: set[str],
    query_texts: dict[str, str],
) -> str:
    """Refuse evaluation queries, queries outside ``split``, and query texts that differ from BEIR's."""
    query_id = record["query_id"]
    for other in beir.splits:
        if other in EVALUATION_SPLITS and query_id in beir.split_query_ids(other):
            raise RecordedDataError(
                f"{where}: query_id {query_id!r} is a query of the evaluation split {other!r} of {beir.name}; "
                "evaluation queries are never used for synthesis or training. Remove that row."
            )
    if query_id not in allowed:
        raise RecordedDataError(
            f"{where}: query_id {query_id!r} is not a query of the training split {split!r} of {beir.name}. "
            "Remove that row, or load the recording with the split it was made from."
        )
    if record["query"] != query_texts[query_id]:
        raise RecordedDataError(
            f"{where}: the query text of {query_id!r} differs from {beir.name}'s: {record['query'][:80]!r} vs "
            f"{query_texts[query_id][:80]!r}. The recording was made for another dataset or version."
        )
    return query_id


def _positive_ids(relevant: dict[str, dict[str, int]]) -> dict[str, list[str]]:
    return {query_id: [doc for doc, score in docs.items() if score > 0] for query_id, docs in relevant.items()}


def _synthetic_row(
    record: dict[str, Any], verdicts: dict[str, Any], gold_ids: list[str], verify_where: str
) -> dict[str, Any]:
    for task in ("positive", "negative"):
        if record[task] is None and verdicts[f"{task}_verdict"] is not None:
            raise RecordedDataError(
                f"{verify_where}: {task}_verdict is {verdicts[f'{task}_verdict']!r} but no {task} passage was "
                "recorded: a verdict needs a passage. Set it to null."
            )
    return {
        "query_id": record["query_id"],
        "query": record["query"],
        "gold_ids": gold_ids,
        "llm_positive": record["positive"],
        "llm_positive_verdict": verdicts["positive_verdict"],
        "llm_negative": record["negative"],
        "llm_negative_verdict": verdicts["negative_verdict"],
        "cot": record["cot"],
        "failures": _failures(record, verdicts),
    }
