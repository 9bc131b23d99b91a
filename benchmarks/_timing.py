"""Timing helpers shared by the training benchmarks."""

from __future__ import annotations

import time

import torch
from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Wall-clock time of every optimizer step, between consecutive step ends (data loading included; the GPU is
    synchronised first so that queued kernels are counted)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.ends = [time.perf_counter()]

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())

    def step_seconds(self, skip: int) -> list[float]:
        """Durations of the steps after the first ``skip`` (all steps if fewer remain)."""
        durations = [end - start for start, end in zip(self.ends, self.ends[1:], strict=False)]
        return durations[skip:] or durations
