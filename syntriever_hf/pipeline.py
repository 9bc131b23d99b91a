"""The main job: what ``syntriever demo`` (and ``make demo``) runs on the bundled data and model, offline.

1. Evaluate the bundled all-MiniLM-L6-v2 on the bundled SciFact test split (MTEB).
2. Stage 1: fine-tune it on SciFact's training queries with the bundled recorded LLM data (verified LLM passages,
   LLM hard negatives, chain-of-thought texts) under the library's default recipe.
3. Evaluate the stage-1 model the same way, and return both rows.

A rerun reuses what is finished: a trained model already saved in the output folder is not trained again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from syntriever_hf.data.stage1_columns import DEFAULT_STAGE1_PRESET
from syntriever_hf.evaluation import RetrievalScores, evaluate_retrieval, load_model
from syntriever_hf.resources import bundled_minilm_path, bundled_scifact_path, bundled_synthetic_scifact_path

__all__ = ["run_demo", "train_demo_stage1"]

logger = logging.getLogger(__name__)


#: Tokens per text when the demo trains (a CPU-friendly length); evaluation uses the model's own 256.
DEMO_TRAIN_MAX_SEQ_LENGTH = 128
DEMO_EVAL_MAX_SEQ_LENGTH = 256


def train_demo_stage1(output_dir: Path, *, epochs: float = 1.0, preset: str = DEFAULT_STAGE1_PRESET) -> Path:
    """Stage 1 on the bundled data (bf16 on CPU, or the accelerator's mixed precision); skipped if already saved."""
    import torch

    from syntriever_hf.trainers.stage1 import train_stage1
    from syntriever_hf.trainers.stage1_arguments import parse_stage1_arguments

    if (output_dir / "modules.json").is_file() and (output_dir / "README.md").is_file():
        logger.info("Stage-1 model already trained in %s: reusing it (delete the folder to retrain).", output_dir)
        return output_dir
    flags = [
        "--data", str(bundled_scifact_path()), "--model_name_or_path", str(bundled_minilm_path()),
        "--synthetic", f"recorded:{bundled_synthetic_scifact_path()}", "--preset", preset,
        "--query_prompt", "", "--document_prompt", "",  # all-MiniLM-L6-v2 was trained without prompts
        "--max_seq_length", str(DEMO_TRAIN_MAX_SEQ_LENGTH),
        "--dev_queries", "0", "--eval_strategy", "no", "--load_best_model_at_end", "false",
        "--save_strategy", "no", "--output_dir", str(output_dir), "--num_train_epochs", str(epochs),
        "--per_device_train_batch_size", "32", "--warmup_steps", "0.1", "--report_to", "none", "--seed", "42",
        "--bf16", "true", *([] if torch.cuda.is_available() else ["--use_cpu", "true"]),
    ]
    stage1_args, training_args = parse_stage1_arguments(flags)
    return train_stage1(stage1_args, training_args)


def run_demo(output_dir: str | Path = "runs/demo", *, show_progress_bar: bool = True) -> dict[str, RetrievalScores]:
    """Run the main job; MTEB result files and the stage-1 model go under ``output_dir``.

    Returns ``{row name: scores}`` for :func:`~syntriever_hf.evaluation.format_scores_table`.
    """
    output = Path(output_dir)
    scifact = bundled_scifact_path()
    logger.info("1/3 Evaluating the base encoder all-MiniLM-L6-v2 on SciFact test")
    base = evaluate_retrieval(
        str(bundled_minilm_path()), scifact, split="test", output_dir=output / "mteb",
        model_name="sentence-transformers/all-MiniLM-L6-v2", show_progress_bar=show_progress_bar,
    )
    logger.info("2/3 Stage 1: training on the recorded LLM data (preset %r)", DEFAULT_STAGE1_PRESET)
    model_dir = train_demo_stage1(output / "stage1-model")
    logger.info("3/3 Evaluating the stage-1 model on SciFact test")
    trained = load_model(str(model_dir))
    trained.max_seq_length = DEMO_EVAL_MAX_SEQ_LENGTH  # the same length as the base row
    stage1 = evaluate_retrieval(
        trained, scifact, split="test", output_dir=output / "mteb",
        model_name="syntriever-demo/all-MiniLM-L6-v2-stage1", show_progress_bar=show_progress_bar,
    )
    return {"all-MiniLM-L6-v2 (base)": base, f"+ stage 1 ({DEFAULT_STAGE1_PRESET})": stage1}
