"""gather_across_devices: two gloo processes with half a batch each give the full batch's loss and gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from syntriever_hf.data.stage1_columns import Stage1Recipe
from syntriever_hf.losses import SyntrieverLoss

ROLES = ("gold", "gold", "llm_positive", "llm_negative")
WORLD = 2


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    query = torch.randn(6, 8, generator=generator, dtype=torch.float64)
    slots = torch.randn(6, 4, 8, generator=generator, dtype=torch.float64)
    # Every query has a positive, and each half of the batch holds 3 queries.
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 1, 1], [1, 0, 0, 1], [1, 1, 0, 0], [1, 0, 1, 1]])
    return query, slots, mask


def _loss(recipe: Stage1Recipe, gather: bool) -> SyntrieverLoss:
    return SyntrieverLoss(None, ROLES, recipe=recipe, scale=20.0, gather_across_devices=gather)


def _worker(rank: int, init_file: str, out_dir: str, recipe: Stage1Recipe, mini_batch_size: int | None) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        query, slots, mask = _batch()
        rows = slice(3 * rank, 3 * rank + 3)
        local_query = query[rows].clone().requires_grad_()
        local_slots = slots[rows].clone().requires_grad_()
        value = _loss(recipe, gather=True).compute_loss_from_embeddings(
            local_query, local_slots, mask[rows], mini_batch_size=mini_batch_size, with_backward=True
        )
        torch.save({"loss": value, "query_grad": local_query.grad, "slot_grad": local_slots.grad},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available() or "fork" not in mp.get_all_start_methods(),
    reason="needs torch.distributed with gloo and the fork start method",
)
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("recipe", "mini_batch_size"),
    [
        (Stage1Recipe(("gold", "llm_positive"), ("llm_negative",), "grouped"), None),
        (Stage1Recipe(("gold", "llm_positive"), ("llm_negative",), "per_positive"), 2),  # chunked, as when cached
    ],
)
def test_two_processes_reproduce_the_full_batch(tmp_path: Path, recipe: Stage1Recipe, mini_batch_size) -> None:
    # fork, not spawn: the workers inherit the imported modules instead of importing them again (seconds each)
    mp.start_processes(
        _worker, args=(str(tmp_path / "init"), str(tmp_path), recipe, mini_batch_size), nprocs=WORLD, start_method="fork"
    )
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD)]

    query, slots, mask = _batch()
    query.requires_grad_()
    slots.requires_grad_()
    full = _loss(recipe, gather=False).compute_loss_from_embeddings(query, slots, mask)
    full.backward()

    # Equal query counts per process: the full batch's mean is the mean of the processes' means. DDP averages the
    # parameter gradients over processes, so each process's embedding gradient is WORLD times the full one's.
    assert sum(result["loss"].item() for result in results) / WORLD == pytest.approx(full.item(), abs=1e-12)
    local_query_grads = torch.cat([result["query_grad"] for result in results]) / WORLD
    local_slot_grads = torch.cat([result["slot_grad"] for result in results]) / WORLD
    torch.testing.assert_close(local_query_grads, query.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(local_slot_grads, slots.grad, rtol=0, atol=1e-12)
    # Without gathering, each process would see only its own half as candidates: a different loss.
    alone = _loss(recipe, gather=False).compute_loss_from_embeddings(query[:3], slots[:3], mask[:3])
    assert alone.item() != pytest.approx(results[0]["loss"].item(), abs=1e-3)
