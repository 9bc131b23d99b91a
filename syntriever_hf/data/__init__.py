"""Datasets: BEIR loading and validation, and the schemas of everything syntriever-hf produces."""

from syntriever_hf.data.beir import BeirDataset, BeirFormatError, load_beir
from syntriever_hf.data.schema import EVALUATION_SPLITS, STAGE1_ROLES

__all__ = ["EVALUATION_SPLITS", "STAGE1_ROLES", "BeirDataset", "BeirFormatError", "load_beir"]
