"""Stage-1 trainer on SciFact without an LLM: our loss beside sentence-transformers' MultipleNegativesRankingLoss.

Fine-tunes the bundled all-MiniLM-L6-v2 on the SciFact training queries (gold positives and hard negatives mined
with the base model; no synthetic text) twice, in one run, with the same rows, batches, steps, seed and precision:

  (a) ``SyntrieverLoss`` (preset ``gold``) under ``Stage1Trainer``;
  (b) ``MultipleNegativesRankingLoss`` under ``SentenceTransformerTrainer``.

Both use ``NoDuplicateTextsBatchSampler``, so their batches are identical. Prints the SciFact test nDCG@10 (MTEB,
via ``evaluate_retrieval``) of the base model, (a) and (b), and the training throughput (samples/s measured between
step ends after a warm-up, data loading included) with the ratio (a)/(b).

Targets: (a) >= base + 0.02; (a) >= (b) - 0.005; throughput ratio >= 0.95.

    .venv/bin/python benchmarks/stage1_scifact.py                           # the benchmark (defaults below)
    .venv/bin/python benchmarks/stage1_scifact.py --max-steps 2 --max-seq-length 32   # smoke run

With ``--max-gold 1`` (the default) each query keeps its first gold passage, so (a) and (b) optimise the same
InfoNCE objective on the same texts: the comparison measures our implementation, not a different recipe.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from _timing import StepTimer
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
from sentence_transformers.sentence_transformer.training_args import (
    SentenceTransformerTrainingArguments,
)
from transformers import set_seed

from syntriever_hf.data import load_beir
from syntriever_hf.data.stage1 import build_stage1_examples
from syntriever_hf.data.stage1_columns import LABEL_COLUMN, to_loss_columns
from syntriever_hf.evaluation import evaluate_retrieval
from syntriever_hf.losses import SyntrieverLoss
from syntriever_hf.resources import bundled_minilm_path, bundled_scifact_path
from syntriever_hf.retrieval import mine_hard_negatives
from syntriever_hf.trainers.sampler import NoDuplicateTextsBatchSampler
from syntriever_hf.trainers.stage1 import Stage1Trainer

PRESET = "gold"


@dataclass
class Run:
    name: str
    ndcg_at_10: float
    samples_per_second: float | None = None
    steps: int = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=2.0, help="Training epochs (default: 2).")
    parser.add_argument("--max-steps", type=int, default=-1, help="Stop after this many steps (smoke runs).")
    parser.add_argument("--batch-size", type=int, default=32, help="Queries per batch (default: 32).")
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--max-seq-length", type=int, default=128,
                        help="Tokens per text in training (default 128: the run fits in 30 minutes on 2 CPU cores).")
    parser.add_argument("--eval-max-seq-length", type=int, default=256,
                        help="Tokens per text when mining and evaluating, for every model (default: MiniLM's 256).")
    parser.add_argument("--num-negatives", type=int, default=1, help="Mined hard negatives per query (default: 1).")
    parser.add_argument("--mining-range-min", type=int, default=2,
                        help="Skip this many top-ranked non-positives (likely unlabelled positives; default: 2).")
    parser.add_argument("--mining-range-max", type=int, default=None, help="Deepest rank to mine from.")
    parser.add_argument("--mining-relative-margin", type=float, default=None,
                        help="Keep a mined document only if it scores below (1 - margin) x the positive's score. "
                        "0.05 with --mining-range-max 60 left 95 of the 809 queries without a negative.")
    parser.add_argument("--max-gold", type=int, default=1, help="Gold passages per query (default: 1, as MNRL).")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16", help="Training precision.")
    parser.add_argument("--warmup-steps-timing", type=int, default=3, help="Steps left out of the throughput.")
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args(argv)


def training_columns(beir: Any, base: SentenceTransformer, options: argparse.Namespace) -> tuple[Dataset, tuple]:
    """Loss columns (query, gold_1.., mined_negative_1..k, label) of the rows that have all their texts."""
    mined = mine_hard_negatives(base, beir, split="train", num_negatives=options.num_negatives,
                                range_min=options.mining_range_min, range_max=options.mining_range_max,
                                relative_margin=options.mining_relative_margin, batch_size=options.eval_batch_size)
    examples = build_stage1_examples(beir, split="train", mined_negatives=mined)
    columns, slot_roles = to_loss_columns(examples, PRESET, max_gold=options.max_gold,
                                          max_mined_negatives=options.num_negatives)
    complete = columns.filter(lambda labels: all(labels), input_columns=LABEL_COLUMN)
    logging.getLogger(__name__).warning("%d of %d training rows have every slot filled and are used by both runs.",
                                        len(complete), len(columns))
    return complete, slot_roles


def training_arguments(output_dir: str, options: argparse.Namespace) -> SentenceTransformerTrainingArguments:
    return SentenceTransformerTrainingArguments(
        output_dir=output_dir, num_train_epochs=options.epochs, max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size, learning_rate=options.learning_rate,
        warmup_steps=options.warmup_ratio, seed=options.seed, batch_sampler=NoDuplicateTextsBatchSampler,
        bf16=options.precision == "bf16", use_cpu=not torch.cuda.is_available(), eval_strategy="no",
        save_strategy="no", report_to="none", logging_steps=10, disable_tqdm=True,
    )


def fine_tune(
    name: str,
    columns: Dataset,
    make_loss: Callable[[SentenceTransformer], torch.nn.Module],
    trainer_class: type[SentenceTransformerTrainer],
    options: argparse.Namespace,
    beir: Any,
) -> Run:
    set_seed(options.seed)
    model = SentenceTransformer(str(bundled_minilm_path()))
    model.max_seq_length = options.max_seq_length
    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="stage1-bench-") as output_dir:
        trainer = trainer_class(model=model, args=training_arguments(output_dir, options), train_dataset=columns,
                                loss=make_loss(model), callbacks=[timer])
        trainer.train()
    seconds = timer.step_seconds(options.warmup_steps_timing)
    model.max_seq_length = options.eval_max_seq_length
    scores = evaluate_retrieval(model, beir, split="test", model_name=f"minilm-{name}",
                                batch_size=options.eval_batch_size, show_progress_bar=False)
    return Run(name, scores.ndcg_at_10, options.batch_size / statistics.median(seconds), len(timer.ends) - 1)


def print_report(runs: list[Run], options: argparse.Namespace, rows: int, wall: float) -> None:
    base, ours, mnrl = runs
    ratio = ours.samples_per_second / mnrl.samples_per_second
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__},"
          f" threads {torch.get_num_threads()}, device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"data: SciFact train, {rows} queries (gold + {options.num_negatives} mined negative(s) from rank "
          f"{options.mining_range_min + 1} on, relative margin {options.mining_relative_margin}, max_gold "
          f"{options.max_gold}); test nDCG@10 via MTEB")
    print(f"training: all-MiniLM-L6-v2, max_seq_length {options.max_seq_length} (evaluation: "
          f"{options.eval_max_seq_length}), batch {options.batch_size}, "
          f"epochs {options.epochs:g}, max_steps {options.max_steps}, {ours.steps} steps, lr {options.learning_rate:g}"
          f", warm-up {options.warmup_ratio:g}, {options.precision}, seed {options.seed}")
    print()
    print(f"{'model':<40} {'nDCG@10':>8} {'train samples/s':>16}")
    for run in runs:
        rate = f"{run.samples_per_second:.2f}" if run.samples_per_second else "-"
        print(f"{run.name:<40} {run.ndcg_at_10:>8.4f} {rate:>16}")
    print()
    checks = [
        (f"(a) >= base + 0.02 ({ours.ndcg_at_10:.4f} vs {base.ndcg_at_10 + 0.02:.4f})",
         ours.ndcg_at_10 >= base.ndcg_at_10 + 0.02),
        (f"(a) >= (b) - 0.005 ({ours.ndcg_at_10:.4f} vs {mnrl.ndcg_at_10 - 0.005:.4f})",
         ours.ndcg_at_10 >= mnrl.ndcg_at_10 - 0.005),
        (f"throughput (a)/(b) >= 0.95 ({ratio:.3f})", ratio >= 0.95),
    ]
    for text, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {text}")
    print(f"wall time: {wall / 60:.1f} min")
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    beir = load_beir(bundled_scifact_path())
    base = SentenceTransformer(str(bundled_minilm_path()))
    base.max_seq_length = options.eval_max_seq_length
    base_scores = evaluate_retrieval(base, beir, split="test", model_name="minilm-base",
                                     batch_size=options.eval_batch_size, show_progress_bar=False)
    columns, slot_roles = training_columns(beir, base, options)
    del base
    ours = fine_tune("(a) SyntrieverLoss (preset gold)", columns,
                     lambda model: SyntrieverLoss(model, slot_roles, recipe=PRESET), Stage1Trainer, options, beir)
    mnrl = fine_tune("(b) MultipleNegativesRankingLoss", columns.remove_columns(LABEL_COLUMN),
                     MultipleNegativesRankingLoss, SentenceTransformerTrainer, options, beir)
    print_report([Run("base all-MiniLM-L6-v2", base_scores.ndcg_at_10), ours, mnrl], options, len(columns),
                 time.perf_counter() - start)


if __name__ == "__main__":
    main()
