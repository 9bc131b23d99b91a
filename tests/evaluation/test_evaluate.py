"""Evaluation through MTEB agrees with sentence-transformers' own evaluator and never serves stale results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

from syntriever_hf.data import load_beir
from syntriever_hf.evaluation import TABLE_METRICS, evaluate_retrieval, format_scores_table
from tests.beir_folders import write_scifact_subset


@pytest.fixture(scope="module")
def scifact_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scifact_subset(tmp_path_factory.mktemp("data") / "scifact-subset")


def _sentence_transformers_ndcg(model: SentenceTransformer, folder: Path) -> dict[str, float]:
    beir = load_beir(folder)
    relevant = {q: {d for d, s in docs.items() if s > 0} for q, docs in beir.relevant_docs("test").items()}
    evaluator = InformationRetrievalEvaluator(
        queries=beir.query_texts("test"), corpus=beir.corpus_texts(), relevant_docs=relevant,
        ndcg_at_k=[10], mrr_at_k=[10], accuracy_at_k=[1], precision_recall_at_k=[10, 100], map_at_k=[10],
        show_progress_bar=False,
    )
    return evaluator(model)


def test_mteb_path_matches_sentence_transformers_evaluator(tiny_model, scifact_subset: Path) -> None:
    ours = evaluate_retrieval(tiny_model, scifact_subset, split="test", show_progress_bar=False)
    reference = _sentence_transformers_ndcg(tiny_model, scifact_subset)
    assert ours.ndcg_at_10 == pytest.approx(reference["cosine_ndcg@10"], abs=1e-4)
    assert ours.scores["recall_at_10"] == pytest.approx(reference["cosine_recall@10"], abs=1e-4)
    assert ours.scores["mrr_at_10"] == pytest.approx(reference["cosine_mrr@10"], abs=1e-4)


def test_prompts_are_applied(tiny_model, scifact_subset: Path) -> None:
    plain = evaluate_retrieval(tiny_model, scifact_subset, show_progress_bar=False).ndcg_at_10
    tiny_model.prompts = {"query": "query: ", "document": "passage: "}
    prompted = evaluate_retrieval(tiny_model, scifact_subset, show_progress_bar=False)
    reference = _sentence_transformers_ndcg(tiny_model, scifact_subset)  # encode_query/encode_document: prompts
    assert prompted.ndcg_at_10 != pytest.approx(plain, abs=1e-6)
    assert prompted.ndcg_at_10 == pytest.approx(reference["cosine_ndcg@10"], abs=1e-4)


def test_result_files_written_and_never_stale(tiny_model_path: Path, tmp_path: Path, scifact_subset: Path) -> None:
    output = tmp_path / "results"
    first = evaluate_retrieval(str(tiny_model_path), scifact_subset, output_dir=output, show_progress_bar=False)
    # a different model filed under the same name must not get the first model's stored score
    other = SentenceTransformer(str(tiny_model_path), device="cpu")
    for parameter in other.parameters():
        parameter.data.normal_(0, 0.5, generator=None)
    second = evaluate_retrieval(other, scifact_subset, output_dir=output, model_name=first.model_name,
                                show_progress_bar=False)
    assert first.model_name == "local/model"
    assert second.ndcg_at_10 != pytest.approx(first.ndcg_at_10, abs=1e-6)
    files = list(output.rglob("BEIRLocal-scifact-subset.json"))
    assert len(files) == 1
    stored = json.loads(files[0].read_text())
    assert stored["scores"]["test"][0]["ndcg_at_10"] == pytest.approx(second.ndcg_at_10)


def test_table_has_every_metric(tiny_model, scifact_subset: Path) -> None:
    scores = evaluate_retrieval(tiny_model, scifact_subset, show_progress_bar=False)
    header, row = format_scores_table({"tiny": scores}).splitlines()
    assert header.split()[1:] == [h for _, h in TABLE_METRICS]
    assert float(row.split()[4]) == pytest.approx(scores.ndcg_at_10, abs=5e-5)


def test_unknown_data_is_explained(tiny_model) -> None:
    with pytest.raises(ValueError, match=r"--data 'NoSuchTask' is neither a BEIR folder, a Hub dataset id"):
        evaluate_retrieval(tiny_model, "NoSuchTask", show_progress_bar=False)
