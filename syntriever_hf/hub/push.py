"""Publishing to the Hugging Face Hub: synthetic datasets with their card, and saved SentenceTransformer folders.

Cards are rendered elsewhere (``syntriever_hf.hub.cards``); this module only uploads. It talks to the endpoint in
``HF_ENDPOINT`` (read by ``huggingface_hub`` when it is first imported; the Hub by default). The Hub token comes
from the ``token`` argument, else ``HF_TOKEN``, else the login saved by ``hf auth login``; it is sent in the
``Authorization`` header only: never logged, and refused if it appears in a card or in a file about to be uploaded.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import DatasetDict
    from huggingface_hub import DatasetCard

__all__ = ["check_saved_model_folder", "push_dataset_dict", "push_model_folder", "validate_repo_id"]

logger = logging.getLogger(__name__)

_REPO_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
#: Files every folder written by ``SentenceTransformer.save`` holds (README.md: the card, required here).
_SAVED_MODEL_FILES = ("modules.json", "config_sentence_transformers.json", "README.md")
#: Dataset card metadata that ``DatasetDict.push_to_hub`` computes from the data (splits, features, files).
_COMPUTED_DATASET_METADATA = ("configs", "dataset_info")
#: Files larger than this are not scanned for the token (weights; a token is text that lands in small files).
_SECRET_SCAN_MAX_BYTES = 64 * 2**20


def validate_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it has the Hub's ``"org/name"`` form, else raise ``ValueError`` saying what is wrong."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(_REPO_PART.fullmatch(p) and "--" not in p and ".." not in p for p in parts):
        raise ValueError(
            f"repo_id={repo_id!r} is not a Hub repo id: expected the form 'org/name' (each part 1-96 letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit), e.g. 'my-org/syntriever-scifact'."
        )
    return repo_id


def push_dataset_dict(
    dataset_dict: DatasetDict,
    repo_id: str,
    card_text: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload dataset with syntriever-hf",
) -> str:
    """Push every split of ``dataset_dict`` as Parquet (``DatasetDict.push_to_hub``), then the card as README.md.

    ``configs`` and ``dataset_info`` in the published card are the ones ``push_to_hub`` computed from the data
    (they replace any in ``card_text``), so ``datasets.load_dataset(repo_id)`` finds every split and feature; all
    other metadata and the text are ``card_text``'s. Pushing again replaces the splits and the card.

    Args:
        dataset_dict: The splits to publish, e.g. ``{"train": <stage-1 synthetic rows>}``.
        repo_id: ``"org/name"`` of the dataset repo (created if missing).
        card_text: The dataset card: YAML metadata header and Markdown (see ``render_card``).
        token: Hub token with write access; default ``HF_TOKEN``, then the saved ``hf auth login``.
        private: Create the repo private (an existing repo keeps its visibility).
        commit_message: Message of the data commit; the card's commit adds " (card)".

    Returns:
        The URL of the card's commit.

    Raises:
        ValueError: a malformed ``repo_id``, an empty or malformed card, a card holding the token, no token.
        TypeError: ``dataset_dict`` is not a ``DatasetDict``.
    """
    from datasets import DatasetDict
    from huggingface_hub import DatasetCard

    validate_repo_id(repo_id)
    if not isinstance(dataset_dict, DatasetDict):
        raise TypeError(f"dataset_dict must be a datasets.DatasetDict, got {type(dataset_dict).__name__}; "
                        "wrap a single split as DatasetDict({'train': dataset}).")
    if not isinstance(card_text, str) or not card_text.strip():
        raise ValueError("card_text is empty: render the dataset card first (syntriever_hf.hub.render_card).")
    token = _resolve_token(token)
    _refuse_secret(card_text, token, where="card_text")
    card = DatasetCard(card_text)  # parses the YAML header now: a malformed card fails before any upload

    logger.info("Pushing dataset splits %s to %s", sorted(dataset_dict), repo_id)
    data_commit = dataset_dict.push_to_hub(repo_id, token=token, private=private, commit_message=commit_message)
    _take_computed_metadata(card, repo_id, revision=data_commit.oid, token=token)
    url = card.push_to_hub(repo_id, token=token, repo_type="dataset", commit_message=f"{commit_message} (card)",
                           parent_commit=data_commit.oid)
    logger.info("Published dataset %s: %s", repo_id, url)
    return str(url)


def push_model_folder(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload model with syntriever-hf",
) -> str:
    """Upload a folder written by ``SentenceTransformer.save`` whose README.md is already the model card.

    After the push, a stock ``SentenceTransformer(repo_id)`` loads the model with its saved prompts (set
    ``model.prompts`` before saving). The folder is uploaded as it is, in one commit.

    Args:
        folder: The saved model (``modules.json``, ``config_sentence_transformers.json``, module folders, README.md).
        repo_id: ``"org/name"`` of the model repo (created if missing).
        token: Hub token with write access; default ``HF_TOKEN``, then the saved ``hf auth login``.
        private: Create the repo private (an existing repo keeps its visibility).
        commit_message: The commit's message.

    Returns:
        The URL of the commit.

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
        ValueError: a malformed ``repo_id``, not a saved SentenceTransformer (see ``check_saved_model_folder``),
            a file of the folder holding the token, no token.
    """
    from huggingface_hub import HfApi

    validate_repo_id(repo_id)
    folder = check_saved_model_folder(folder)
    token = _resolve_token(token)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_size <= _SECRET_SCAN_MAX_BYTES):
        _refuse_secret(path.read_bytes(), token, where=str(path))

    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    logger.info("Uploading %s to %s", folder, repo_url)
    commit = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="model",
                               commit_message=commit_message)
    logger.info("Published model %s: %s", repo_id, commit.commit_url)
    return str(commit.commit_url)


def check_saved_model_folder(folder: str | Path) -> Path:
    """Return ``folder`` as a ``Path`` if it holds a saved SentenceTransformer with a card, else raise."""
    from huggingface_hub import ModelCard

    folder = Path(folder)
    fix = "save the model with model.save(folder) and write its card to folder/README.md first"
    if not folder.is_dir():
        raise FileNotFoundError(f"folder={str(folder)!r} is not a directory; {fix}.")
    missing = [name for name in _SAVED_MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"folder={str(folder)!r} is not a saved SentenceTransformer: {missing} missing; {fix}.")
    modules_file = folder / "modules.json"
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        module_paths = [str(module["path"]) for module in modules]
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{modules_file}: not a sentence-transformers module list ({error}); {fix}.") from error
    absent = [path for path in module_paths if not (folder / path).is_dir()]
    if absent:
        raise ValueError(f"{modules_file} lists module folders {absent} that are missing from {folder}; {fix}.")
    try:
        ModelCard((folder / "README.md").read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{folder / 'README.md'}: the card's YAML header is invalid ({error}).") from error
    return folder


def _resolve_token(token: str | None) -> str:
    """The ``token`` argument, else ``HF_TOKEN``, else the saved login; raise if there is none."""
    from huggingface_hub import get_token

    resolved = token or get_token()
    if not resolved:
        raise ValueError("No Hub token: pass token=..., set the HF_TOKEN environment variable, "
                         "or log in once with `hf auth login`.")
    return resolved


def _refuse_secret(content: str | bytes, token: str, *, where: str) -> None:
    """Raise if the token occurs in ``content`` (the message names the place, never the token)."""
    needle = token.encode() if isinstance(content, bytes) else token
    if needle in content:
        raise ValueError(f"{where} contains the Hub token; remove it before publishing (tokens are never uploaded).")


def _take_computed_metadata(card: DatasetCard, repo_id: str, *, revision: str, token: str) -> None:
    """Set in ``card`` the metadata that ``push_to_hub`` computed from the data and wrote to README.md."""
    from huggingface_hub import DatasetCard, hf_hub_download

    pushed_path = hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision, token=token)
    pushed = DatasetCard.load(pushed_path).data
    for key in _COMPUTED_DATASET_METADATA:
        if pushed.get(key) is not None:
            card.data[key] = pushed[key]
