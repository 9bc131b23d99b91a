"""Publishing: real ``datasets``/``huggingface_hub``/``sentence_transformers`` code against a local fake Hub.

The push and the reload run in a subprocess (tests/hub/publish_roundtrip.py) because ``HF_ENDPOINT`` is read when
the HF libraries are imported, and this test process has imported them already, offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from syntriever_hf.hub import check_saved_model_folder, push_dataset_dict, push_model_folder, validate_repo_id
from tests.conftest import SCIFACT_DIR, SYNTHETIC_SCIFACT_DIR
from tests.fakes.hub_server import FakeHub

TOKEN = "hf_fakeToken0123456789abcdefXYZ"
ROUNDTRIP_SCRIPT = Path(__file__).with_name("publish_roundtrip.py")
PROMPTS = {"query": "query: ", "document": "passage: "}
TEXTS = ["cancer cells increase tumor expression", "blood dose response in mice"]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    with FakeHub(tmp_path / "hub-storage", token=TOKEN) as server:
        yield server
    assert server.errors == []


def run_roundtrip(hub: FakeHub, tmp_path: Path, *args: str, env: dict[str, str]) -> tuple[dict, str]:
    """Run the round-trip script against ``hub``; return its JSON result and everything it logged."""
    child_env = {key: value for key, value in os.environ.items()
                 if key not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    child_env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "client-hf-home"),
                     HF_HUB_DISABLE_TELEMETRY="1", **env)
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(ROUNDTRIP_SCRIPT), *args, "--out", str(out)], env=child_env,
                          capture_output=True, text=True, timeout=300)
    logs = done.stdout + done.stderr
    assert done.returncode == 0, logs[-4000:]
    return json.loads(out.read_text()), logs


def assert_token_sent_never_stored(hub: FakeHub, logs: str, *folders: Path) -> None:
    """Every commit carried the token; neither the logs nor any file in ``folders`` holds it."""
    commits = [r for r in hub.requests if r["method"] == "POST" and "/commit/" in r["path"]]
    assert commits, "no commit reached the fake Hub"
    for request in commits:
        assert {k.lower(): v for k, v in request["headers"].items()}["authorization"] == f"Bearer {TOKEN}"
    assert "syntriever_hf.hub.push: Published" in logs  # the log under test is really there
    assert TOKEN not in logs
    stored = [path for folder in folders for path in folder.rglob("*") if path.is_file()]
    assert len(stored) > 5
    leaked = [path for path in stored if TOKEN.encode() in path.read_bytes()]
    assert leaked == []


# -- round trips through the fake Hub ---------------------------------------------------------------------------

def stage1_dataset_dict():
    """Recorded SciFact rows in the stage-1 synthetic schema, with a rejected positive and a failed task."""
    from datasets import DatasetDict, concatenate_datasets

    from syntriever_hf.data import load_beir
    from syntriever_hf.data.recorded import load_recorded_stage1

    synthetic = load_recorded_stage1(SYNTHETIC_SCIFACT_DIR, load_beir(SCIFACT_DIR))
    rejected = synthetic.filter(lambda row: row["llm_positive_verdict"] == "no").select(range(1))

    def fail_first(row: dict, index: int) -> dict:  # a failed task: no text, no verdict, one failures line
        if index == 0:
            row.update(cot=None, failures=["cot: the answer was empty"])
        return row

    extra = concatenate_datasets([synthetic.select(range(5, 7)), rejected]).map(fail_first, with_indices=True)
    return DatasetDict({"train": synthetic.select(range(5)), "extra": extra})


def test_push_dataset_dict_reloads_with_load_dataset(hub: FakeHub, tmp_path: Path) -> None:
    from datasets import Features

    from syntriever_hf.data.schema import STAGE1_SYNTHETIC_FEATURES

    dataset_dict = stage1_dataset_dict()
    dataset_dict.save_to_disk(str(tmp_path / "saved"))
    # a stale `dataset_info` (as a template could carry) must give way to the one computed from the data
    card = ("---\nlicense: cc-by-nc-2.0\npretty_name: Synthetic SciFact\ndataset_info:\n  dataset_size: 1\n---\n"
            "# Synthetic SciFact (test)\n\nRows of stage 1.\n")
    (tmp_path / "card.md").write_text(card)

    result, logs = run_roundtrip(hub, tmp_path, "dataset", "--saved", str(tmp_path / "saved"), "--card",
                                 str(tmp_path / "card.md"), "--repo-id", "test-org/synthetic-scifact",
                                 env={"PUSH_TOKEN": TOKEN})

    assert set(result["rows"]) == {"train", "extra"}
    for split, dataset in dataset_dict.items():
        assert result["rows"][split] == dataset.to_list()
        assert Features.from_dict(result["features"][split]) == STAGE1_SYNTHETIC_FEATURES
    assert result["rows"]["extra"][0]["cot"] is None
    readme = hub.read("test-org/synthetic-scifact", "README.md", repo_type="dataset").decode()
    assert readme.endswith("---\n# Synthetic SciFact (test)\n\nRows of stage 1.\n")
    metadata = yaml.safe_load(readme.split("---\n")[1])
    assert (metadata["license"], metadata["pretty_name"]) == ("cc-by-nc-2.0", "Synthetic SciFact")
    assert {s["name"]: s["num_examples"] for s in metadata["dataset_info"]["splits"]} == {"train": 5, "extra": 3}
    assert {f["split"] for f in metadata["configs"][0]["data_files"]} == {"train", "extra"}
    assert result["url"].startswith(f"{hub.url}/datasets/test-org/synthetic-scifact/commit/")
    assert_token_sent_never_stored(hub, logs, hub.root, tmp_path / "client-hf-home")


@pytest.fixture
def carded_model_folder(tiny_model_path: Path, tmp_path: Path) -> Path:
    """The tiny model saved with e5-style prompts and a README card, as a trainer would leave it."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_path), device="cpu")
    model.prompts = dict(PROMPTS)
    folder = tmp_path / "model-to-publish"
    model.save(str(folder))
    (folder / "README.md").write_text("---\nlibrary_name: sentence-transformers\ntags:\n- syntriever\n---\n# Tiny\n")
    return folder


def test_push_model_folder_reloads_with_stock_sentence_transformer(
    hub: FakeHub, tmp_path: Path, carded_model_folder: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    args = ["model", "--folder", str(carded_model_folder), "--repo-id", "test-org/tiny-retriever"]
    result, logs = run_roundtrip(hub, tmp_path, *args, *[f"--text={text}" for text in TEXTS],
                                 env={"HF_TOKEN": TOKEN})

    assert result["prompts"] == PROMPTS
    np.testing.assert_allclose(result["query"], result["query_prompt_by_hand"], atol=1e-6)
    np.testing.assert_allclose(result["document"], result["document_prompt_by_hand"], atol=1e-6)
    assert np.abs(np.array(result["query"]) - np.array(result["plain"])).max() > 1e-3  # the prompt matters
    local = SentenceTransformer(str(carded_model_folder), device="cpu")
    np.testing.assert_allclose(result["query"], local.encode_query(TEXTS), atol=1e-6)
    assert hub.read("test-org/tiny-retriever", "README.md") == (carded_model_folder / "README.md").read_bytes()
    assert result["url"].startswith(f"{hub.url}/test-org/tiny-retriever/commit/")
    assert_token_sent_never_stored(hub, logs, hub.root, tmp_path / "client-hf-home")


# -- refusals, before any network call ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "repo_id", ["no-namespace", "a/b/c", "org/", "/name", "org/na me", "org/-name", "org/name.", "org/a--b", ""]
)
def test_validate_repo_id_names_the_value_and_the_form(repo_id: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"repo_id={repo_id!r} is not a Hub repo id: expected the form "
                                                   "'org/name'")):
        validate_repo_id(repo_id)


def test_validate_repo_id_accepts_org_and_name() -> None:
    assert validate_repo_id("my-org/syntriever_e5.v2") == "my-org/syntriever_e5.v2"


def test_push_dataset_dict_refuses_a_malformed_repo_id() -> None:
    from datasets import Dataset, DatasetDict

    dataset_dict = DatasetDict({"train": Dataset.from_dict({"x": [1]})})
    with pytest.raises(ValueError, match=r"repo_id='synthetic scifact' is not a Hub repo id"):
        push_dataset_dict(dataset_dict, "synthetic scifact", "# card\n", token=TOKEN)


def test_push_dataset_dict_wants_a_dataset_dict() -> None:
    from datasets import Dataset

    with pytest.raises(TypeError, match=r"dataset_dict must be a datasets.DatasetDict, got Dataset; wrap"):
        push_dataset_dict(Dataset.from_dict({"x": [1]}), "org/name", "# card\n", token=TOKEN)


def test_push_dataset_dict_refuses_a_card_holding_the_token() -> None:
    from datasets import Dataset, DatasetDict

    dataset_dict = DatasetDict({"train": Dataset.from_dict({"x": [1]})})
    with pytest.raises(ValueError, match=r"card_text contains the Hub token; remove it") as raised:
        push_dataset_dict(dataset_dict, "org/name", f"# card\nUse token {TOKEN}\n", token=TOKEN)
    assert TOKEN not in str(raised.value)


def test_push_without_any_token_says_where_to_put_one(carded_model_folder: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ValueError, match=r"No Hub token: pass token=\.\.\., set the HF_TOKEN environment variable"):
        push_model_folder(carded_model_folder, "org/name")


def test_push_model_folder_refuses_a_folder_that_is_not_a_saved_model(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# just a card\n")
    expected = r"is not a saved SentenceTransformer: \['modules.json', 'config_sentence_transformers.json'\] missing"
    with pytest.raises(ValueError, match=expected):
        push_model_folder(tmp_path, "org/name", token=TOKEN)
    with pytest.raises(FileNotFoundError, match=r"folder='.*nowhere' is not a directory"):
        push_model_folder(tmp_path / "nowhere", "org/name", token=TOKEN)


def test_a_saved_model_needs_its_card_and_its_module_folders(carded_model_folder: Path) -> None:
    assert check_saved_model_folder(carded_model_folder) == carded_model_folder
    shutil.rmtree(carded_model_folder / "1_Pooling")
    with pytest.raises(ValueError, match=r"modules.json lists module folders \['1_Pooling'\] that are missing"):
        check_saved_model_folder(carded_model_folder)
    (carded_model_folder / "README.md").unlink()
    with pytest.raises(ValueError, match=r"\['README.md'\] missing; save the model with model.save"):
        check_saved_model_folder(carded_model_folder)


def test_push_model_folder_refuses_a_file_holding_the_token(carded_model_folder: Path) -> None:
    (carded_model_folder / "training_notes.txt").write_text(f"pushed with {TOKEN}\n")
    with pytest.raises(ValueError, match=r"training_notes.txt contains the Hub token") as raised:
        push_model_folder(carded_model_folder, "org/name", token=TOKEN)
    assert TOKEN not in str(raised.value)
