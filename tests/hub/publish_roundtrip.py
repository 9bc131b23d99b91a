"""Push with syntriever_hf.hub, then reload with stock libraries; run by tests/hub/test_hub_push.py in a subprocess.

The caller sets ``HF_ENDPOINT`` (a local fake Hub), ``HF_HUB_DISABLE_XET=1`` and a fresh ``HF_HOME`` before this
process imports any Hugging Face library, and unsets ``HF_HUB_OFFLINE``. Results go to ``--out`` as JSON; every log
record (DEBUG and up, all libraries) goes to stderr so that the caller can search it for the token.

    python publish_roundtrip.py dataset --saved DIR --card FILE --repo-id ORG/NAME --out FILE   (token: $PUSH_TOKEN)
    python publish_roundtrip.py model --folder DIR --repo-id ORG/NAME --text T [--text T ...] --out FILE  ($HF_TOKEN)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path


def publish_dataset(args: argparse.Namespace) -> dict:
    from datasets import load_dataset, load_from_disk

    from syntriever_hf.hub import push_dataset_dict

    card = Path(args.card).read_text(encoding="utf-8")
    url = push_dataset_dict(load_from_disk(args.saved), args.repo_id, card, token=os.environ.pop("PUSH_TOKEN"))
    reloaded = load_dataset(args.repo_id)
    return {
        "url": url,
        "rows": {split: reloaded[split].to_list() for split in reloaded},
        "features": {split: reloaded[split].features.to_dict() for split in reloaded},
    }


def publish_model(args: argparse.Namespace) -> dict:
    from sentence_transformers import SentenceTransformer

    from syntriever_hf.hub import push_model_folder

    url = push_model_folder(args.folder, args.repo_id)  # token from HF_TOKEN
    model = SentenceTransformer(args.repo_id, device="cpu")  # the stock loader, as a user would
    texts = args.text
    encode = {
        "query": model.encode_query(texts),
        "document": model.encode_document(texts),
        "plain": model.encode(texts),
        "query_prompt_by_hand": model.encode([model.prompts["query"] + text for text in texts]),
        "document_prompt_by_hand": model.encode([model.prompts["document"] + text for text in texts]),
    }
    return {"url": url, "prompts": model.prompts, **{key: value.tolist() for key, value in encode.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    dataset = commands.add_parser("dataset")
    dataset.add_argument("--saved", required=True, help="a DatasetDict written by save_to_disk")
    dataset.add_argument("--card", required=True)
    model = commands.add_parser("model")
    model.add_argument("--folder", required=True)
    model.add_argument("--text", action="append", required=True)
    for command in (dataset, model):
        command.add_argument("--repo-id", required=True)
        command.add_argument("--out", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    result = publish_dataset(args) if args.command == "dataset" else publish_model(args)
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
