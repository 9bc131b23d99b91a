"""Two CPU processes (gloo) train stage 1 together: different data per process, and with gathering on, each
process's loss scores its queries against the other process's texts too."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT

WORKER = Path(__file__).with_name("ddp_stage1_worker.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(model: Path, beir: Path, output: Path, mode: str) -> list[dict]:
    output.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(_free_port()), str(WORKER), str(model), str(beir), str(output), mode]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    runs = [torch.load(output / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)]
    assert [run["world_size"] for run in runs] == [2, 2]
    return [run["records"] for run in runs]


def test_two_processes_train_on_different_data_and_gather_candidates(tiny_model_path, tiny_beir_dir, tmp_path):
    rank0, rank1 = _launch(tiny_model_path, tiny_beir_dir, tmp_path / "gather", "gather")
    assert len(rank0) == len(rank1) == 3  # max_steps
    seen0 = [query for step in rank0 for query in step["queries"]]
    seen1 = [query for step in rank1 for query in step["queries"]]
    assert len(seen0) == len(seen1) == 12 and not set(seen0) & set(seen1)  # disjoint batches
    for step0, step1 in zip(rank0, rank1, strict=True):
        batch = step0["local"].size(0)
        assert (step0["offset"], step1["offset"]) == (0, batch)
        assert step0["gathered"].size(0) == step1["gathered"].size(0) == 2 * batch
        # Each process's candidates are its own slots followed by the other process's, exactly.
        assert torch.equal(step0["gathered"][:batch], step0["local"])
        assert torch.equal(step0["gathered"][batch:], step1["local"])
        assert torch.equal(step1["gathered"][:batch], step0["local"])


@pytest.mark.slow
def test_without_gathering_each_loss_sees_only_its_own_batch(tiny_model_path, tiny_beir_dir, tmp_path):
    rank0, rank1 = _launch(tiny_model_path, tiny_beir_dir, tmp_path / "local", "local")
    for step in (*rank0, *rank1):
        assert step["offset"] == 0 and torch.equal(step["gathered"], step["local"])
