"""Our MTEB evaluation of the bundled all-MiniLM-L6-v2 on SciFact test, beside a bare ``SentenceTransformer.encode``.

Prints nDCG@10 (published MTEB score: 0.6451) and the encoding throughput of our whole evaluation path (documents and
queries per second of wall time, search and scoring included) next to a bare ``encode`` of the same texts with the
same prompts and batch size, interleaved in one run, and their ratio (target >= 0.95).

    .venv/bin/python benchmarks/eval_scifact.py [--repeats 2] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from sentence_transformers import SentenceTransformer

from syntriever_hf.data import load_beir
from syntriever_hf.evaluation import evaluate_retrieval, format_scores_table
from syntriever_hf.resources import bundled_minilm_path, bundled_scifact_path


def bare_encode_seconds(
    model: SentenceTransformer, queries: list[str], documents: list[str], batch_size: int
) -> float:
    start = time.perf_counter()
    model.encode_query(queries, batch_size=batch_size, show_progress_bar=False)
    model.encode_document(documents, batch_size=batch_size, show_progress_bar=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help="Timed runs of each path (interleaved).")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    scifact = load_beir(bundled_scifact_path(), splits=["test"])
    queries = list(scifact.query_texts("test").values())
    documents = list(scifact.corpus_texts().values())
    texts = len(queries) + len(documents)
    model = SentenceTransformer(str(bundled_minilm_path()), device="cpu")
    model.model_card_data.model_name = "sentence-transformers/all-MiniLM-L6-v2"
    model.encode(documents[:64], batch_size=args.batch_size, show_progress_bar=False)  # warm-up

    ours, bare, scores = [], [], None
    for _ in range(args.repeats):
        bare.append(bare_encode_seconds(model, queries, documents, args.batch_size))
        start = time.perf_counter()
        scores = evaluate_retrieval(model, scifact, split="test", batch_size=args.batch_size, show_progress_bar=False)
        ours.append(time.perf_counter() - start)

    ours_rate, bare_rate = texts / statistics.median(ours), texts / statistics.median(bare)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print(f"texts per pass: {len(documents)} documents + {len(queries)} queries; batch {args.batch_size}; "
          f"{args.repeats} interleaved repeats (median)")
    print(format_scores_table({"all-MiniLM-L6-v2": scores}))
    print(f"nDCG@10: {scores.ndcg_at_10:.4f} (published MTEB: 0.6451)")
    print(f"throughput, our evaluation path (encode + search + scoring): {ours_rate:.1f} texts/s")
    print(f"throughput, bare SentenceTransformer.encode:                 {bare_rate:.1f} texts/s")
    print(f"ratio ours / bare: {ours_rate / bare_rate:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
