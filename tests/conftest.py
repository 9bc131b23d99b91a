"""Session fixtures shared by the whole suite: an offline environment and tiny random encoders.

The environment variables are set at import time, before any Hugging Face library is imported, because
``huggingface_hub`` reads them once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="syntriever-tests-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HOME", str(_SESSION_HOME / "hf"))
os.environ.setdefault("MTEB_CACHE", str(_SESSION_HOME / "mteb"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SCIFACT_DIR = REPO_ROOT / "syntriever_hf" / "resources" / "beir" / "scifact"
SYNTHETIC_SCIFACT_DIR = REPO_ROOT / "syntriever_hf" / "resources" / "synthetic" / "scifact"

# A vocabulary small enough for a fast model, large enough that short English texts differ token by token.
_WORDS = (
    "the a of and to in is was for on with that by as are be this from or an at it not which have has were "
    "cell cells protein gene genes cancer patients disease study risk increase decrease effect treatment "
    "mice human blood brain heart liver tumor expression levels higher lower associated reduced increased "
    "query passage document relevant evidence result results trial clinical dose response infection virus"
).split()


def _build_tiny_model(folder: Path, hidden_size: int = 32, layers: int = 2) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_WORDS, *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"],
             *"abcdefghijklmnopqrstuvwxyz0123456789.,:;!?-()%"]
    vocab_file = folder / "vocab.txt"
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizer(str(vocab_file))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden_size, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=hidden_size * 2, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    backbone = folder / "backbone"
    BertModel(config).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    transformer = Transformer(str(backbone), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(hidden_size, pooling_mode="mean"), Normalize()])
    saved = folder / "model"
    model.save(str(saved))
    return saved


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random BERT sentence-transformer (32-d, 2 layers), built once per session. Do not modify it."""
    return _build_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def tiny_model_copy(tiny_model_path: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model's folder that a test may train and overwrite."""
    target = tmp_path / "tiny-model"
    shutil.copytree(tiny_model_path, target)
    return target


@pytest.fixture
def tiny_model(tiny_model_copy: Path):
    """A freshly loaded tiny random ``SentenceTransformer`` on the CPU."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_model_copy), device="cpu")


# --- a fake OpenAI-compatible server (engine and synthesis tests) -----------------------------------------------

API_KEY = "sk-test-SECRET-123"


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The key in ``OPENAI_API_KEY``; the fake server accepts only this one (tests search outputs for it)."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    return API_KEY


@pytest.fixture
def server(api_key: str):
    """A fake OpenAI server on loopback with a little latency and no faults (tests set ``faults``)."""
    from tests.fakes.openai_server import FakeOpenAIServer

    with FakeOpenAIServer(latency=0.005, api_key=api_key) as fake:
        yield fake
