"""One process of the 2-process (gloo, CPU) stage-1 test; started by ``torch.distributed.run`` from the test.

Usage: ``python -m torch.distributed.run --nproc_per_node 2 ddp_stage1_worker.py MODEL BEIR OUTPUT GATHER``.

Each process trains a few steps of :class:`Stage1Trainer` and writes ``OUTPUT/rank<r>.pt``: the query texts of
every batch it trained on, and per step its own slot embeddings and the candidate embeddings its loss used.
The loss is a subclass of ``SyntrieverLoss`` that only records what ``gather_candidates`` returns.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from sentence_transformers import SentenceTransformer

from syntriever_hf.data import load_beir
from syntriever_hf.data.stage1 import build_stage1_examples
from syntriever_hf.data.stage1_columns import to_loss_columns
from syntriever_hf.losses import SyntrieverLoss
from syntriever_hf.trainers.stage1 import Stage1Trainer
from syntriever_hf.trainers.stage1_arguments import Stage1TrainingArguments


class RecordingLoss(SyntrieverLoss):
    """SyntrieverLoss that keeps, per step, the query texts, its own slots and the candidates it scored against."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tokenizer = self.model.tokenizer  # under DDP, self.model becomes the wrapper, which has no tokenizer
        self.records: list[dict] = []

    def forward(self, sentence_features, labels):
        features = list(sentence_features)
        queries = self.tokenizer.batch_decode(features[0]["input_ids"], skip_special_tokens=True)
        self.records.append({"queries": queries})
        return super().forward(features, labels)

    def gather_candidates(self, slot_emb, mask):
        candidate_emb, candidate_mask, offset = super().gather_candidates(slot_emb, mask)
        self.records[-1].update(local=slot_emb.detach().float().cpu(), gathered=candidate_emb.detach().float().cpu(),
                                offset=offset)
        return candidate_emb, candidate_mask, offset


def main(model_path: str, beir_path: str, output: str, gather: str) -> None:
    model = SentenceTransformer(model_path, device="cpu")
    beir = load_beir(beir_path)
    columns, slot_roles = to_loss_columns(build_stage1_examples(beir), "gold")
    loss = RecordingLoss(model, slot_roles, recipe="gold", gather_across_devices=gather == "gather")
    args = Stage1TrainingArguments(
        output_dir=output, use_cpu=True, per_device_train_batch_size=4, max_steps=3, learning_rate=1e-3,
        eval_strategy="no", save_strategy="no", load_best_model_at_end=False, report_to="none", disable_tqdm=True,
        seed=0, logging_steps=1,
    )
    trainer = Stage1Trainer(model=model, args=args, train_dataset=columns, loss=loss)
    trainer.train()
    rank = torch.distributed.get_rank()
    torch.save({"world_size": torch.distributed.get_world_size(), "records": loss.records},
               Path(output) / f"rank{rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:5])
