"""The installable package: everything reachable from ``syntriever_hf``, no generic top-level names in the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import syntriever_hf
from tests.conftest import REPO_ROOT


def test_every_export_resolves() -> None:
    for name in syntriever_hf.__all__:
        assert getattr(syntriever_hf, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = syntriever_hf.nope


def test_import_is_light() -> None:
    code = "import sys, syntriever_hf, syntriever_hf.synthesis; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_wheel_ships_everything_under_one_name(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO_ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("syntriever_hf-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"syntriever_hf"}
    for expected in ("syntriever_hf/trainers/stage1.py", "syntriever_hf/hub_cards/model_card.md",
                     "syntriever_hf/hub_cards/stage1_dataset_card.md",
                     "syntriever_hf/resources/beir/scifact/corpus.jsonl.gz",
                     "syntriever_hf/resources/beir/scifact/qrels/test.tsv",
                     "syntriever_hf/resources/synthetic/scifact/stage1.jsonl"):
        assert expected in names, expected
