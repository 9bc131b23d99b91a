"""``syntriever evaluate``: nDCG@k, recall and MRR of a bi-encoder on a retrieval split, through MTEB."""

from __future__ import annotations

import argparse
import logging

__all__ = ["register"]

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="Evaluate a retriever on a BEIR folder, a Hub dataset or an MTEB task.",
        description="Evaluate a sentence-transformers bi-encoder with MTEB and print nDCG@1/3/5/10/100, "
        "Recall@10/100 and MRR@10. The model's saved query/document prompts are applied.",
    )
    parser.add_argument("--model", required=True, help="Model folder or Hub id (e.g. intfloat/e5-base-v2).")
    parser.add_argument(
        "--data", required=True,
        help="A BEIR folder (corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv), a Hub dataset id in BeIR or "
        "mteb layout, or an MTEB task name such as SciFact (Hub ids and task names need network access).",
    )
    parser.add_argument("--split", default="test", help="The qrels split to evaluate (default: test).")
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="Folder for MTEB's result files (default: none written).")
    parser.add_argument("--model-name", default=None,
                        help="Name to file results under (default: the Hub id, or local/<folder name>).")
    parser.add_argument("--batch-size", type=int, default=32, help="Encoding batch size (default: 32).")
    parser.add_argument("--device", default=None, help="Torch device, e.g. cpu or cuda (default: automatic).")
    parser.add_argument("--no-progress", action="store_true", help="Hide the encoding progress bars.")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from syntriever_hf.evaluation import evaluate_retrieval, format_scores_table

    scores = evaluate_retrieval(
        args.model, args.data, device=args.device, split=args.split, output_dir=args.output,
        model_name=args.model_name or None,
        batch_size=args.batch_size, show_progress_bar=not args.no_progress,
    )
    print(f"{scores.task} [{scores.split}]")  # the table is the command's output, not a log line
    print(format_scores_table({scores.model_name: scores}))
    if args.output:
        logger.info("MTEB result files written under %s", args.output)
    return 0
