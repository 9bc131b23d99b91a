"""Training throughput of the stage-1 trainer beside MultipleNegativesRankingLoss, on a randomly initialised encoder.

A BERT with e5-base's shape (768-d, 12 layers, 12 heads, 3072 intermediate, 30522 tokens) is trained for a few
steps on synthetic texts of fixed token lengths (query + gold passage + one hard negative per row), in bf16 at
batch 64, first under ``Stage1Trainer`` with ``SyntrieverLoss`` and then under ``SentenceTransformerTrainer`` with
``MultipleNegativesRankingLoss``: same rows, sampler, steps and precision. Prints tokens/s, samples/s, and the model
FLOPs utilisation (MFU: 6 x non-embedding parameters + 12 x layers x hidden x sequence length FLOPs per trained
token, over the accelerator's dense bf16 peak) of each, and the ratio ours / MNRL.

    python benchmarks/stage1_gpu_throughput.py --device cuda                      # the measurement (GPU)
    python benchmarks/stage1_gpu_throughput.py --device cpu --hidden 64 --layers 2 --heads 2 --intermediate 128 \\
        --batch-size 8 --query-length 16 --document-length 32 --steps 3 --warmup-steps 1   # CPU smoke test

Every word of the synthetic texts is one token of a generated vocabulary and texts are longer than the limits, so
every query has exactly ``--query-length`` tokens and every passage ``--document-length`` (checked before timing).
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from _timing import StepTimer
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
from transformers import BertConfig, BertModel, BertTokenizerFast, set_seed

from syntriever_hf.data.schema import STAGE1_TRAINING_FEATURES
from syntriever_hf.data.stage1_columns import to_loss_columns
from syntriever_hf.losses import SyntrieverLoss
from syntriever_hf.trainers.sampler import NoDuplicateTextsBatchSampler
from syntriever_hf.trainers.stage1 import Stage1Trainer

#: Dense bf16 peak FLOP/s by device name (NVIDIA data sheets, without sparsity).
PEAK_BF16_FLOPS = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12), ("L40S", 362e12))


@dataclass
class Measurement:
    name: str
    seconds_per_step: float
    tokens_per_step: int
    samples_per_step: int
    flops_per_step: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_per_step / self.seconds_per_step

    def mfu(self, peak: float | None) -> float | None:
        return self.flops_per_step / self.seconds_per_step / peak if peak else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--intermediate", type=int, default=3072)
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--query-length", type=int, default=32, help="Tokens per query, [CLS] and [SEP] included.")
    parser.add_argument("--document-length", type=int, default=256, help="Tokens per passage.")
    parser.add_argument("--steps", type=int, default=30, help="Timed steps per loss.")
    parser.add_argument("--warmup-steps", type=int, default=5, help="Steps run before timing starts.")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="Dense peak TFLOP/s of the device in this precision (default: known GPUs' bf16 peak).")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def build_model(folder: Path, options: argparse.Namespace) -> Path:
    """A random BERT sentence-transformer (mean pooling, normalised) with a one-token-per-word vocabulary."""
    words = [f"w{i}" for i in range(options.vocab - 5)]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    config = BertConfig(vocab_size=options.vocab, hidden_size=options.hidden, num_hidden_layers=options.layers,
                        num_attention_heads=options.heads, intermediate_size=options.intermediate,
                        max_position_embeddings=max(512, options.document_length))
    torch.manual_seed(options.seed)
    backbone = folder / "backbone"
    BertModel(config).save_pretrained(backbone)
    BertTokenizerFast(vocab_file=str(vocab_file)).save_pretrained(backbone)
    transformer = Transformer(str(backbone), max_seq_length=options.document_length)
    model = SentenceTransformer(modules=[transformer, Pooling(options.hidden, pooling_mode="mean"), Normalize()])
    model.save(str(folder / "model"))
    return folder / "model"


def synthetic_rows(options: argparse.Namespace) -> Dataset:
    """Stage-1 training rows (``STAGE1_TRAINING_FEATURES``) of random words, longer than the token limits."""
    rng = random.Random(options.seed)
    vocab = options.vocab - 5

    def text(words: int) -> str:
        return " ".join(f"w{rng.randrange(vocab)}" for _ in range(words))

    rows = options.batch_size * (options.steps + options.warmup_steps + 1)
    return Dataset.from_list([
        {"query_id": str(i), "query": text(options.query_length - 2), "gold": [text(options.document_length)],
         "llm_positive": None, "cot": None, "llm_negative": None, "rejected_positive": None,
         "mined_negative": [text(options.document_length)]}
        for i in range(rows)
    ], features=STAGE1_TRAINING_FEATURES)


def flops_per_step(options: argparse.Namespace, model: SentenceTransformer) -> tuple[int, float]:
    """(tokens, training FLOPs) of one step: 6N per token plus attention, 12 * layers * hidden * length."""
    backbone = model[0].auto_model
    # Embeddings are lookups and the pooler is not used by mean pooling: neither counts as model FLOPs.
    dense = sum(p.numel() for name, p in backbone.named_parameters() if not name.startswith(("embeddings", "pooler")))
    lengths = [options.query_length] + [options.document_length] * 2
    tokens = options.batch_size * sum(lengths)
    attention = sum(12 * options.layers * options.hidden * length * length for length in lengths)
    return tokens, 6 * dense * tokens + options.batch_size * attention


def check_lengths(model: SentenceTransformer, columns: Dataset, options: argparse.Namespace) -> None:
    row = columns[0]
    for column, expected in (("query", options.query_length), ("gold_1", options.document_length)):
        length = int(model.preprocess([row[column]])["attention_mask"].sum())
        if length != expected:
            raise RuntimeError(f"{column} tokenizes to {length} tokens, expected {expected}.")


def measure(name: str, model_path: Path, columns: Dataset, options: argparse.Namespace, ours: bool) -> Measurement:
    set_seed(options.seed)
    model = SentenceTransformer(str(model_path), device=options.device)
    check_lengths(model, columns, options)
    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="stage1-gpu-") as output_dir:
        args = SentenceTransformerTrainingArguments(
            output_dir=output_dir, max_steps=options.steps + options.warmup_steps,
            per_device_train_batch_size=options.batch_size, learning_rate=2e-5, seed=options.seed,
            batch_sampler=NoDuplicateTextsBatchSampler, bf16=options.precision == "bf16",
            use_cpu=options.device == "cpu", eval_strategy="no", save_strategy="no", report_to="none",
            logging_steps=1000, disable_tqdm=True, dataloader_drop_last=True,
        )
        if ours:
            loss = SyntrieverLoss(model, ("gold", "mined_negative"), recipe="gold")
            trainer = Stage1Trainer(model=model, args=args, train_dataset=columns, loss=loss, callbacks=[timer])
        else:
            trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=columns.remove_columns("label"),
                                                 loss=MultipleNegativesRankingLoss(model), callbacks=[timer])
        trainer.train()
    tokens, flops = flops_per_step(options, model)
    seconds = statistics.median(timer.step_seconds(options.warmup_steps))
    return Measurement(name, seconds, tokens, options.batch_size, flops)


def peak_flops(options: argparse.Namespace) -> float | None:
    if options.peak_tflops:
        return options.peak_tflops * 1e12
    if options.device != "cuda" or options.precision != "bf16":
        return None
    device_name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16_FLOPS if key in device_name), None)


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    if options.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but no CUDA device is visible; use --device cpu for a smoke test.")
    with tempfile.TemporaryDirectory(prefix="stage1-gpu-model-") as folder:
        model_path = build_model(Path(folder), options)
        columns, _ = to_loss_columns(synthetic_rows(options), "gold")
        results = [measure("(a) Stage1Trainer + SyntrieverLoss", model_path, columns, options, ours=True),
                   measure("(b) SentenceTransformerTrainer + MNRL", model_path, columns, options, ours=False)]
    peak = peak_flops(options)
    device = torch.cuda.get_device_name() if options.device == "cuda" else "cpu"
    print(f"device: {device}, torch {torch.__version__}, {options.precision}, peak "
          f"{f'{peak / 1e12:.0f} TFLOP/s' if peak else 'unknown (MFU not computed; pass --peak-tflops)'}")
    print(f"model: random BERT {options.layers} layers x {options.hidden} (heads {options.heads}, intermediate "
          f"{options.intermediate}, vocab {options.vocab}); batch {options.batch_size}: query {options.query_length} "
          f"+ gold {options.document_length} + negative {options.document_length} tokens; {options.steps} timed "
          f"steps after {options.warmup_steps} warm-up steps (median step time)")
    print(f"{'run':<40} {'s/step':>8} {'tokens/s':>10} {'samples/s':>10} {'MFU':>7}")
    for result in results:
        mfu = result.mfu(peak)
        print(f"{result.name:<40} {result.seconds_per_step:>8.4f} {result.tokens_per_second:>10.0f} "
              f"{result.samples_per_step / result.seconds_per_step:>10.1f} {f'{mfu:.1%}' if mfu else '-':>7}")
    print(f"throughput ratio (a)/(b): {results[1].seconds_per_step / results[0].seconds_per_step:.3f}")
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
