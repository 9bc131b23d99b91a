"""``syntriever demo``: the main job on the bundled SciFact data and model, offline and without an account."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="Run the main job on the bundled SciFact data and MiniLM model (offline).",
        description="Evaluate the bundled all-MiniLM-L6-v2 on the bundled SciFact test split (MTEB), train it with "
        "stage 1 on the bundled recorded LLM data (default recipe), evaluate the result, and "
        "print the result table.",
    )
    parser.add_argument("--output", default="runs/demo", metavar="DIR",
                        help="Folder for the run's files (default: runs/demo).")
    parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from syntriever_hf.evaluation import format_scores_table
    from syntriever_hf.pipeline import run_demo

    results = run_demo(args.output, show_progress_bar=not args.no_progress)
    print("SciFact [test]")
    print(format_scores_table(results))
    return 0
