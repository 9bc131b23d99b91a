"""The ``syntriever`` command: help texts, and ``evaluate`` on a BEIR folder it has never seen."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from syntriever_hf.cli.main import build_parser, main
from tests.beir_folders import write_beir_folder


def test_evaluate_help_documents_every_option() -> None:
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    evaluate = subparsers.choices["evaluate"]
    for action in evaluate._actions:
        assert action.help, f"option {action.option_strings} has no help text"


def test_evaluate_on_an_unseen_folder(tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_beir_folder(tmp_path / "never-seen-before", gz=True)
    code = main(["evaluate", "--model", str(tiny_model_path), "--data", str(folder), "--output",
                 str(tmp_path / "out"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "BEIRLocal-never-seen-before [test]" in out
    row = out.strip().splitlines()[-1].split()
    assert row[0] == "local/model"
    assert all(0.0 <= float(value) <= 1.0 for value in row[1:])
    assert list((tmp_path / "out").rglob("BEIRLocal-never-seen-before.json"))


def test_missing_split_is_reported_by_the_cli(tiny_model_path: Path, tmp_path: Path) -> None:
    folder = write_beir_folder(tmp_path / "toy")
    with pytest.raises(FileNotFoundError, match=r"split 'dev' was asked for"):
        main(["evaluate", "--model", str(tiny_model_path), "--data", str(folder), "--split", "dev"])


def test_console_script_help_starts_without_torch() -> None:
    code = "import sys; from syntriever_hf.cli.main import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
    help_text = subprocess.run([sys.executable, "-m", "syntriever_hf.cli.main", "--help"], capture_output=True,
                               text=True, check=True).stdout
    assert re.search(r"evaluate\s+Evaluate a retriever", help_text)
