"""The stage-1 recipe ladder on SciFact: which texts of the recorded LLM data help a retriever, over seeds.

Fine-tunes all-MiniLM-L6-v2 on SciFact's 809 training queries with the recorded LLM data
(``syntriever_hf/resources/synthetic/scifact``) under each stage-1 preset, with the same steps, batch, learning
rate, precision and seed set, and reports SciFact test nDCG@10 as mean and spread (sample standard deviation) over
the seeds, beside the untrained base model. Rows:

  base (no training); gold (gold passage only); gold-llm-negative (+ the LLM's hard negative); paper (the grouped
  formula: {gold, LLM positive, CoT} in one log-sum-exp); grouped ({gold, LLM positive}, no CoT); per-positive
  ({gold, verified LLM positive} each their own InfoNCE term); zero-label (no gold: LLM positive + CoT + LLM
  negative); authors-code (what the authors' scripts computed).

Every run goes through the library's own ``train_stage1`` (no dev set, so every run trains the same number of
steps and the last checkpoint is the result). Each finished run is written to ``--output`` at once; the same
command run again (with more seeds or presets, or after an interruption) trains only the runs the file lacks.
Evaluation: ``--evaluator mteb`` (our MTEB path, the default) or ``--evaluator st`` (sentence-transformers'
InformationRetrievalEvaluator, for machines without mteb; the test suite checks that the two agree to 1e-4, and the
base row shows it on the full data).

    .venv/bin/python benchmarks/stage1_ladder.py --seeds 0 1 2 --output runs/ladder/ladder.json
    python benchmarks/stage1_ladder.py --model /path/to/minilm --device cuda --evaluator st   # a GPU machine
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from _timing import StepTimer

from syntriever_hf.data import BeirDataset, load_beir
from syntriever_hf.data.stage1_columns import DEFAULT_STAGE1_PRESET
from syntriever_hf.resources import bundled_scifact_path, bundled_synthetic_scifact_path
from syntriever_hf.trainers.stage1 import train_stage1
from syntriever_hf.trainers.stage1_arguments import parse_stage1_arguments

PRESETS = ("gold", "gold-llm-negative", "paper", "grouped", "per-positive", "zero-label", "authors-code")


def evaluate(model_path: str, scifact: BeirDataset, args: argparse.Namespace) -> float:
    """SciFact test nDCG@10 of a saved model, encoded at ``--eval-max-seq-length`` in ``--eval-precision``."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device=args.device)
    model.max_seq_length = args.eval_max_seq_length
    if args.eval_precision == "bf16":
        model.to(torch.bfloat16)
    evaluator = args.evaluator
    if evaluator == "mteb":
        from syntriever_hf.evaluation import evaluate_retrieval

        return evaluate_retrieval(model, scifact, split="test", show_progress_bar=False).ndcg_at_10
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    relevant = {q: {d for d, s in docs.items() if s > 0} for q, docs in scifact.relevant_docs("test").items()}
    ir = InformationRetrievalEvaluator(queries=scifact.query_texts("test"), corpus=scifact.corpus_texts(),
                                       relevant_docs=relevant, ndcg_at_k=[10], show_progress_bar=False,
                                       batch_size=128)
    return float(ir(model)["cosine_ndcg@10"])


def train(preset: str, seed: int, args: argparse.Namespace, output_dir: Path) -> tuple[Path, int, float]:
    """Train one (preset, seed) run with ``train_stage1``; return the folder, the steps and the seconds."""
    flags = [
        "--data", str(bundled_scifact_path()), "--model_name_or_path", args.model,
        "--synthetic", f"recorded:{bundled_synthetic_scifact_path()}", "--preset", preset,
        "--query_prompt", "", "--document_prompt", "", "--max_seq_length", str(args.max_seq_length),
        "--dev_queries", "0", "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
        "--output_dir", str(output_dir), "--num_train_epochs", str(args.epochs),
        "--per_device_train_batch_size", str(args.batch_size), "--learning_rate", str(args.learning_rate),
        "--warmup_steps", str(args.warmup_ratio), "--seed", str(seed), "--data_seed", str(seed),
        "--logging_steps", "1000", "--report_to", "none", "--disable_tqdm", "true",
    ]
    if args.precision == "bf16":
        flags += ["--bf16", "true"] + (["--use_cpu", "true"] if args.device == "cpu" else [])
    stage1_args, training_args = parse_stage1_arguments(flags)
    timer = StepTimer()
    start = time.perf_counter()
    folder = train_stage1(stage1_args, training_args, callbacks=[timer])
    return folder, len(timer.ends) - 1, time.perf_counter() - start


def summarise(name: str, scores: list[float]) -> str:
    spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
    values = " ".join(f"{s:.4f}" for s in scores)
    return f"{name:<20} {statistics.mean(scores):.4f}  {spread:.4f}  [{values}]"


def verdict(scores: dict[str, list[float]], default: str) -> str:
    """The issue's rule, applied to trained rows (``scores[preset]``: one nDCG@10 per seed, the same seeds in the same
    order for every row): the default must win on mean without a worse spread than the runner-up, and beat gold-only
    training by at least one seed-spread (the larger of the two rows'). Runs of one seed share the initialisation
    and batch order across presets, so the per-seed wins are stated too."""
    if len(scores) < 2 or min(len(values) for values in scores.values()) < 2:
        return "verdict: fewer than two trained rows with several seeds; nothing to compare."
    mean = {name: statistics.mean(values) for name, values in scores.items()}
    spread = {name: statistics.stdev(values) for name, values in scores.items()}
    best, runner_up = sorted(mean, key=mean.get, reverse=True)[:2]
    lines = [f"verdict: best mean {best} ({mean[best]:.4f} ± {spread[best]:.4f}), runner-up {runner_up} "
             f"({mean[runner_up]:.4f} ± {spread[runner_up]:.4f}); spread no worse than the runner-up's: "
             f"{'yes' if spread[best] <= spread[runner_up] else 'no'}; library default: {default}"]
    for other in dict.fromkeys([runner_up, "gold"]):
        if other in scores and other != best:
            wins = sum(a > b for a, b in zip(scores[best], scores[other], strict=True))
            margin, needed = mean[best] - mean[other], max(spread[best], spread[other])
            lines.append(f"verdict: {best} - {other} = {margin:+.4f} (one seed-spread: {needed:.4f}); "
                         f"higher on {wins} of {len(scores[best])} seeds")
    return "\n".join(lines)


#: Settings that change a run's result; a resumed ``--output`` file must agree on all of them.
RESULT_SETTINGS = ("model", "epochs", "batch_size", "learning_rate", "warmup_ratio", "max_seq_length", "precision",
                   "evaluator", "eval_precision", "eval_max_seq_length")


def load_finished_runs(args: argparse.Namespace) -> dict[str, dict]:
    """The runs an earlier, interrupted call already wrote to ``--output`` (none without one)."""
    if not args.output or not Path(args.output).exists():
        return {}
    saved = json.loads(Path(args.output).read_text())
    differing = {k: (saved["settings"].get(k), getattr(args, k)) for k in RESULT_SETTINGS
                 if saved["settings"].get(k) != getattr(args, k)}
    if differing:
        raise SystemExit(f"{args.output} holds runs made with other settings {differing} (saved, now); "
                         "pass another --output or delete it to start afresh.")
    return saved["results"]


def save_results(args: argparse.Namespace, results: dict[str, dict]) -> None:
    """Write every finished run to ``--output`` at once, so an interrupted ladder resumes where it stopped."""
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(output.name + ".partial")
        partial.write_text(json.dumps({"settings": vars(args), "results": results}, indent=2))
        partial.replace(output)  # atomic: a kill mid-write leaves the previous file whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Base model folder (default: the bundled all-MiniLM-L6-v2).")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), help="Presets to train (default: all).")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--evaluator", choices=["mteb", "st"], default="mteb")
    parser.add_argument("--eval-precision", choices=["bf16", "fp32"], default="fp32",
                        help="Encode the test corpus in this precision (bf16: about 2.5x faster on CPU).")
    parser.add_argument("--eval-max-seq-length", type=int, default=256,
                        help="Token limit when encoding for evaluation (all-MiniLM-L6-v2's own: 256).")
    parser.add_argument("--output", default=None, help="Write the scores as JSON to this file.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.model is None:
        from syntriever_hf.resources import bundled_minilm_path

        args.model = str(bundled_minilm_path())

    scifact = load_beir(bundled_scifact_path())
    start = time.perf_counter()
    results = load_finished_runs(args)
    if "base" not in results:
        results["base"] = {"scores": [evaluate(args.model, scifact, args)]}
        save_results(args, results)
    print(summarise("base", results["base"]["scores"]), flush=True)
    for preset in args.presets:
        runs = {run["seed"]: run for run in results.get(preset, {}).get("runs", [])}
        for seed in args.seeds:
            if seed in runs:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                folder, steps, seconds = train(preset, seed, args, Path(tmp) / "model")
                runs[seed] = {"seed": seed, "steps": steps, "train_seconds": seconds,
                              "ndcg_at_10": evaluate(str(folder), scifact, args)}
            ordered = [runs[s] for s in sorted(runs)]
            results[preset] = {"scores": [r["ndcg_at_10"] for r in ordered], "runs": ordered}
            save_results(args, results)
        default = " (library default)" if preset == DEFAULT_STAGE1_PRESET else ""
        scores = [runs[s]["ndcg_at_10"] for s in args.seeds]
        print(summarise(preset, scores) + f"  steps {runs[args.seeds[0]]['steps']}{default}", flush=True)

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
    print(f"\nsettings: epochs {args.epochs}, batch {args.batch_size}, lr {args.learning_rate}, warm-up "
          f"{args.warmup_ratio}, max length {args.max_seq_length}, {args.precision}, seeds {args.seeds}, "
          f"evaluator {args.evaluator} ({args.eval_precision}, length {args.eval_max_seq_length}); "
          f"device {args.device} ({device_name}); torch {torch.__version__}; "
          f"wall {time.perf_counter() - start:.0f} s")
    per_seed = {name: [run["ndcg_at_10"] for run in results[name]["runs"] if run["seed"] in args.seeds]
                for name in args.presets}
    print(verdict(per_seed, DEFAULT_STAGE1_PRESET))
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))


if __name__ == "__main__":
    main()
