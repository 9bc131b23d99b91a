"""The schemas of every dataset syntriever-hf reads or writes.

All datasets are ``datasets.Dataset`` objects keyed by the BEIR ids of queries and documents (strings), so that
synthetic data, mined negatives and preferences can always be traced back to the source benchmark.

BEIR layer (``load_beir``):

* corpus: ``id`` (str), ``title`` (str, may be empty), ``text`` (str)
* queries: ``id`` (str), ``text`` (str)
* qrels, one ``Dataset`` per split: ``query_id`` (str), ``corpus_id`` (str), ``score`` (int32)

Stage-1 synthetic data (what the synthesis engine writes; one row per training query):

* ``query_id``, ``query``
* ``gold_ids``: the query's positive document ids in the training qrels (may be empty: zero-label setting)
* ``llm_positive`` / ``llm_positive_verdict``: the LLM's relevant passage and the verifier's "yes"/"no"
* ``llm_negative`` / ``llm_negative_verdict``: the plausible-but-irrelevant passage and its verdict
* ``cot``: the chain-of-thought expansion of the query
* ``failures``: one "<task>: <reason>" line per task that ended without a usable answer

A text is ``None`` when its task failed; a verdict is ``None`` when the verification failed or was not run.

Stage-1 training examples (``syntriever_hf.data.stage1``; one row per query, verification applied):

* ``query_id``, ``query``
* one column per text role (``STAGE1_ROLES``): ``gold`` (list), ``llm_positive``, ``cot``, ``llm_negative``,
  ``rejected_positive``, ``mined_negative`` (list); single-text roles are ``None`` when absent.

Verification drives the roles: a positive judged "no" becomes ``rejected_positive`` (a hard negative); a negative
judged "yes" (relevant after all) is dropped; an unverified positive is not used as a positive.
"""

from __future__ import annotations

from datasets import Features, Sequence, Value

__all__ = [
    "CORPUS_FEATURES",
    "EVALUATION_SPLITS",
    "QRELS_FEATURES",
    "QUERIES_FEATURES",
    "STAGE1_LIST_ROLES",
    "STAGE1_ROLES",
    "STAGE1_SYNTHETIC_FEATURES",
    "STAGE1_TRAINING_FEATURES",
    "VERDICTS",
]

CORPUS_FEATURES = Features({"id": Value("string"), "title": Value("string"), "text": Value("string")})
QUERIES_FEATURES = Features({"id": Value("string"), "text": Value("string")})
QRELS_FEATURES = Features({"query_id": Value("string"), "corpus_id": Value("string"), "score": Value("int32")})

#: Splits whose queries are held out for evaluation: never used for synthesis, retrieval or training.
EVALUATION_SPLITS = frozenset({"test", "dev", "validation", "val", "eval"})

#: The only verdicts a verification may produce.
VERDICTS = ("yes", "no")

STAGE1_SYNTHETIC_FEATURES = Features(
    {
        "query_id": Value("string"),
        "query": Value("string"),
        "gold_ids": Sequence(Value("string")),
        "llm_positive": Value("string"),
        "llm_positive_verdict": Value("string"),
        "llm_negative": Value("string"),
        "llm_negative_verdict": Value("string"),
        "cot": Value("string"),
        "failures": Sequence(Value("string")),
    }
)

#: Text roles of a stage-1 training example, in the canonical column order.
STAGE1_ROLES = ("gold", "llm_positive", "cot", "llm_negative", "rejected_positive", "mined_negative")
#: Roles that hold a list of texts (the others hold one text or ``None``).
STAGE1_LIST_ROLES = frozenset({"gold", "mined_negative"})

STAGE1_TRAINING_FEATURES = Features(
    {
        "query_id": Value("string"),
        "query": Value("string"),
        **{
            role: Sequence(Value("string")) if role in STAGE1_LIST_ROLES else Value("string")
            for role in STAGE1_ROLES
        },
    }
)
