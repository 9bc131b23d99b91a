"""``syntriever synthesize``: stage-1 synthetic data from an LLM for the training queries of a dataset.

Thin over :func:`syntriever_hf.synthesis.synthesize_stage1`. The API key is read from the environment variable
named by ``--api-key-env`` (default ``OPENAI_API_KEY``); it is never a command-line argument.

Exit codes: 0 done; 2 the API key variable is unset; 3 a limit (``--max-cost``/``--max-requests``) stopped the
run: the output is written but partial, and rerunning with a higher limit completes it without paying again for
what is stored; 4 the endpoint refused the requests (bad key, no permission, unknown model).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

__all__ = ["EXIT_ENDPOINT_REFUSED", "EXIT_STOPPED_BY_BUDGET", "EXIT_USAGE", "register"]

logger = logging.getLogger(__name__)

#: Exit status when the API key variable is unset.
EXIT_USAGE = 2
#: Exit status when a spending limit left requests unsent.
EXIT_STOPPED_BY_BUDGET = 3
#: Exit status when the endpoint refused every request (bad key, no permission, unknown model).
EXIT_ENDPOINT_REFUSED = 4


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("input")
    group.add_argument("--data", required=True,
                       help="A BEIR folder or Hub dataset id (its training queries are used), or a .txt file with "
                       "one query per line.")
    group.add_argument("--split", default="train", help="The qrels split whose queries are used (default: train).")
    group.add_argument("--allow-evaluation-split", action="store_true",
                       help="Allow an evaluation split (test, dev, ...): its queries then leak into training data.")
    group.add_argument("--limit", type=int, default=None, metavar="N", help="Use only the first N queries.")
    group.add_argument("--source-license", default=None,
                       help="Hub licence id of the source queries, for the card (known for SciFact).")


def _add_llm_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("LLM")
    group.add_argument("--model", required=True, help="Chat model name, e.g. gpt-4o-mini.")
    group.add_argument("--base-url", default=None,
                       help="OpenAI-compatible API root, e.g. http://localhost:8000/v1 (default: OpenAI).")
    group.add_argument("--api-key-env", default="OPENAI_API_KEY",
                       help="NAME of the environment variable holding the API key (default: OPENAI_API_KEY).")
    group.add_argument("--mode", choices=["online", "batch"], default="online",
                       help="online: concurrent chat requests; batch: the Batch API, half price, up to 24 h.")
    group.add_argument("--temperature", type=float, default=0.7, help="Sampling temperature (default: 0.7).")
    group.add_argument("--max-tokens", type=int, default=512,
                       help="Answer bound of passages and chains of thought (default: 512).")
    group.add_argument("--structured-output", action="store_true",
                       help="Ask for JSON-schema answers (the endpoint must support response_format json_schema).")
    group.add_argument("--no-verify-negative", action="store_true", help="Do not verify the generated negatives.")
    group.add_argument("--max-attempts", type=int, default=3,
                       help="Answers per request at most when an answer breaks the expected format (default: 3).")


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("throughput and budget")
    group.add_argument("--concurrency", type=int, default=32, help="Requests in flight (default: 32).")
    group.add_argument("--rpm", type=_positive_float, default=None, help="Requests per minute at most.")
    group.add_argument("--tpm", type=_positive_float, default=None, help="Tokens per minute at most (estimated).")
    group.add_argument("--timeout", type=_positive_float, default=120.0,
                       help="Seconds per HTTP request before it is retried (default: 120).")
    group.add_argument("--max-retries", type=_non_negative_int, default=6,
                       help="Retries per request on 429/5xx/timeouts/dropped connections (default: 6).")
    group.add_argument("--max-cost", type=float, default=None, metavar="USD",
                       help="Stop before the run directory's estimated spending would pass USD (across reruns).")
    group.add_argument("--max-requests", type=_non_negative_int, default=None,
                       help="Stop before the run directory has sent more requests than this (across reruns).")
    group.add_argument("--prices", default=None, metavar="FILE",
                       help="JSON/YAML price table {model: {input, output}} in USD per 1M tokens.")
    group.add_argument("--batch-poll-interval", type=_positive_float, default=30.0,
                       help="Seconds before the first Batch API poll; the wait doubles up to 10 min (default: 30).")
    group.add_argument("--dry-run", action="store_true",
                       help="Print the number of requests and the estimated tokens and cost; send nothing.")
    group.add_argument("--no-progress", action="store_true", help="Hide the progress bars.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synthesize",
        help="Generate stage-1 synthetic data (positives, negatives, chains of thought, verifications) with an LLM.",
        description="Ask an OpenAI-compatible LLM, for every training query, for a relevant passage, a plausible "
        "but irrelevant passage and a step-by-step expansion, then have it verify the passages. Answers are "
        "cached in OUTPUT (rerun to resume). Exit status: 2 no API key; 3 a --max-cost/--max-requests limit "
        "stopped the run (partial output); 4 the endpoint refused the requests.",
    )
    _add_source_options(parser)
    _add_llm_options(parser)
    _add_engine_options(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--output", required=True, metavar="DIR",
                     help="Output and run directory: dataset (save_to_disk), README.md card, response store.")
    out.add_argument("--push-to-hub", default=None, metavar="ORG/NAME", help="Also push the dataset and card.")
    out.add_argument("--private", action="store_true", help="Create the Hub repo private.")
    parser.set_defaults(handler=run)


def _queries(args: argparse.Namespace):
    from syntriever_hf.synthesis import QuerySet, read_query_file

    data = Path(args.data).expanduser()
    if data.is_file():
        queries = QuerySet.from_texts(read_query_file(data), source=data.name, license=args.source_license)
    else:
        queries = QuerySet.from_beir(args.data, split=args.split, allow_evaluation_split=args.allow_evaluation_split,
                                     license=args.source_license)
    return queries.head(args.limit)


def _settings(args: argparse.Namespace):
    from syntriever_hf.llm import BatchSettings, ClientSettings, EngineSettings
    from syntriever_hf.synthesis import Stage1Settings

    stage1 = Stage1Settings(model=args.model, temperature=args.temperature, max_tokens=args.max_tokens,
                            structured_output=args.structured_output, verify_negative=not args.no_verify_negative)
    client = ClientSettings(base_url=args.base_url, api_key_env=args.api_key_env, timeout=args.timeout,
                            max_retries=args.max_retries)
    engine = EngineSettings(
        client=client, mode=args.mode, concurrency=args.concurrency, requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm, max_attempts=args.max_attempts, max_cost=args.max_cost,
        max_requests=args.max_requests, batch=BatchSettings(poll_interval=args.batch_poll_interval),
        show_progress=not args.no_progress,
    )
    return stage1, engine


def _print_estimate(estimate, model: str) -> None:
    cost = "unknown (no price for this model; pass --prices)" if estimate.max_cost_usd is None else (
        f"{estimate.max_cost_usd:.4f} USD")
    print(f"Dry run for {estimate.queries} queries with {model}; nothing was sent.")
    print(f"  generation requests to send:   {estimate.generation.to_send} "
          f"({estimate.generation.cached} already stored)")
    print(f"  verification requests to send: {estimate.verification.to_send} "
          f"({estimate.verification.cached} already stored)")
    print(f"  prompt tokens (upper estimate): {estimate.input_tokens}")
    print(f"  answer tokens (at most):        {estimate.max_output_tokens}")
    print(f"  cost (at most):                 {cost}")


def _quiet_http_logs() -> None:
    """One INFO line per HTTP request (httpx) or retry (openai) drowns the progress bar: keep those at WARNING."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("httpx", "httpx2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from syntriever_hf.llm import FatalEndpointError, load_price_table, read_api_key
    from syntriever_hf.synthesis import estimate_stage1, synthesize_stage1

    _quiet_http_logs()
    queries = _queries(args)
    stage1, engine = _settings(args)
    prices = load_price_table(args.prices)
    if args.dry_run:
        _print_estimate(estimate_stage1(queries, stage1, args.output, engine_settings=engine, prices=prices),
                        args.model)
        return 0
    try:
        read_api_key(args.api_key_env)
    except RuntimeError as error:
        logger.error("%s", error)
        return EXIT_USAGE
    source_path = None if Path(args.data).expanduser().is_file() else str(args.data)
    try:
        result = synthesize_stage1(queries, stage1, args.output, engine_settings=engine, prices=prices,
                                   source_path=source_path, push_to_hub=args.push_to_hub, private=args.private)
    except FatalEndpointError as error:
        logger.error("The endpoint refused the requests, so the run stopped: %s. Answers received so far are "
                     "stored in %s; fix the problem and rerun.", error, args.output)
        return EXIT_ENDPOINT_REFUSED
    counts = result.counts
    print(f"Wrote {counts.queries} rows to {result.output_dir} ({counts.rows_with_failures} with failures; "
          f"~{result.totals.cost_usd:.4f} USD in total)")
    if result.hub_url:
        print(f"Pushed to {result.hub_url}")
    if result.stopped_by_budget:
        logger.warning("A spending limit stopped the run: the output is partial. Rerun with a higher limit to "
                       "complete it (stored answers are not paid again).")
        return EXIT_STOPPED_BY_BUDGET
    return 0
