"""The model card of a stage-1 retriever: card data collected from the training objects, rendered from a template.

:func:`stage1_card_data` reads everything the card states from the objects of the run (the model, the loss and its
config and citation, the arguments that differ from their defaults, the dataset counts, the evaluation scores), so
that nothing is typed by hand. :func:`render_stage1_model_card` is pure: it fills ``hub_cards/model_card.md`` (with
``StrictUndefined``: a missing value raises). Secrets never reach the card: arguments whose name marks a credential
(``hub_token``, ...) are left out, and the rendered text is checked for their values.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from syntriever_hf.hub.cards import render_card

__all__ = [
    "MODEL_CARD_TEMPLATE",
    "SENTENCE_TRANSFORMERS_CITATION",
    "Stage1CardData",
    "non_default_arguments",
    "render_stage1_model_card",
    "stage1_card_data",
    "without_local_folders",
]

logger = logging.getLogger(__name__)

MODEL_CARD_TEMPLATE = "model_card.md"

#: Argument names that hold credentials (never written to a card), or machine-local paths (meaningless in one).
_SECRET_NAME = re.compile(r"(^|_)(token|secret|password|api_key|apikey|credentials?)$", re.IGNORECASE)
_LOCAL_ONLY = frozenset({"output_dir", "logging_dir", "resume_from_checkpoint", "local_rank"})

SENTENCE_TRANSFORMERS_CITATION = """@inproceedings{reimers-2019-sentence-bert,
    title = "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
    author = "Reimers, Nils and Gurevych, Iryna",
    booktitle = "Proceedings of the 2019 Conference on Empirical Methods in Natural Language Processing",
    month = "11",
    year = "2019",
    publisher = "Association for Computational Linguistics",
    url = "https://arxiv.org/abs/1908.10084",
}
"""


@dataclass
class Stage1CardData:
    """Everything the stage-1 model card states (all values already plain strings, numbers, lists or dicts)."""

    model_id: str
    base_model: str
    base_model_on_hub: bool
    dataset_name: str
    dataset_id: str | None
    split: str
    loss_name: str
    loss_config: dict[str, Any]
    loss_citation: str | None
    recipe: dict[str, Any]
    prompts: dict[str, str]
    max_seq_length: int | None
    embedding_dimension: int | None
    similarity: str
    statistics: dict[str, int]
    arguments: dict[str, Any]
    training_arguments: dict[str, Any]
    evaluation: list[dict[str, Any]] = field(default_factory=list)
    license: str | None = None
    tags: list[str] = field(default_factory=lambda: ["sentence-transformers", "sentence-similarity",
                                                      "feature-extraction", "dense-retrieval", "syntriever"])
    #: Values that must never appear in the rendered card (e.g. the Hub token of the run); not rendered.
    secrets: list[str] = field(default_factory=list, repr=False)


def non_default_arguments(arguments: Any, defaults: Any) -> dict[str, Any]:
    """The fields of a dataclass instance that differ from ``defaults`` (an instance or a dict), minus secrets and
    machine-local paths. Values are JSON-friendly (enums by value); absolute local paths are cut to their last part."""
    current = _as_dict(arguments)
    reference = defaults if isinstance(defaults, Mapping) else _as_dict(defaults)
    changed = {}
    for name, value in current.items():
        if _SECRET_NAME.search(name) or name in _LOCAL_ONLY:
            continue
        if name not in reference or reference[name] != value:
            changed[name] = without_local_folders(value)
    return changed


def without_local_folders(value: Any) -> Any:
    """``value`` with an absolute local path (``/home/me/data/scifact``, ``recorded:~/runs/x``) cut to its last part.

    Such paths say nothing on another machine and can reveal a user name; a relative path, a Hub id or a URL is
    kept as it is. Lists and tuples are handled item by item.
    """
    if isinstance(value, (list, tuple)):
        return [without_local_folders(item) for item in value]
    if not isinstance(value, str):
        return value
    scheme, colon, rest = value.partition(":")
    if colon and rest.startswith(("/", "~")) and not rest.startswith("//"):
        return f"{scheme}:{without_local_folders(rest)}"
    if value.startswith(("/", "~")):
        return Path(value.rstrip("/")).name or value
    return value


def _as_dict(arguments: Any) -> dict[str, Any]:
    if hasattr(arguments, "to_dict"):
        return dict(arguments.to_dict())
    values = {item.name: getattr(arguments, item.name) for item in dataclasses.fields(arguments) if item.init}
    return {name: getattr(value, "value", value) for name, value in values.items()}


def _dataclass_defaults(arguments: Any) -> dict[str, Any]:
    """The declared defaults of a dataclass's fields (fields without one are absent: they always differ)."""
    defaults = {}
    for item in dataclasses.fields(arguments):
        if item.default is not dataclasses.MISSING:
            defaults[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            defaults[item.name] = item.default_factory()
    return defaults


def _training_defaults(training_args: Any) -> dict[str, Any]:
    """A default instance of the training arguments' own class, as a dict (what the run could have left unset)."""
    default = type(training_args)(output_dir="unused", accelerator_config={"use_configured_state": True})
    return default.to_dict()


def _secret_values(*arguments: Any) -> list[str]:
    values = []
    for instance in arguments:
        for item in dataclasses.fields(instance):
            value = getattr(instance, item.name, None)
            if _SECRET_NAME.search(item.name) and isinstance(value, str) and value:
                values.append(value)
    return values


def _is_hub_id(name: str) -> bool:
    return name.count("/") == 1 and not Path(name).expanduser().exists() and not name.startswith((".", "/", "~"))


def stage1_card_data(
    *,
    model: Any,
    loss: Any,
    stage1_args: Any,
    training_args: Any,
    dataset_name: str,
    statistics: Mapping[str, int],
    evaluation: Sequence[Mapping[str, Any]] = (),
) -> Stage1CardData:
    """Collect the card data of a stage-1 run from its objects.

    Args:
        model: The trained ``SentenceTransformer`` (its prompts, sequence length, dimension, similarity).
        loss: The loss (``get_config_dict()``, ``citation``, ``recipe``).
        stage1_args: The :class:`~syntriever_hf.trainers.stage1_arguments.Stage1Arguments` of the run.
        training_args: The training arguments; only values differing from a default instance are listed.
        dataset_name: The BEIR dataset's name.
        statistics: Counts of the training data (``stage1_statistics`` plus anything else worth stating).
        evaluation: Rows ``{"dataset", "split", "metric", "value"}``.
    """
    recipe = getattr(loss, "recipe", None)
    model_id = getattr(training_args, "hub_model_id", None) or Path(str(training_args.output_dir)).name
    return Stage1CardData(
        model_id=model_id,
        base_model=without_local_folders(stage1_args.model_name_or_path),
        base_model_on_hub=_is_hub_id(stage1_args.model_name_or_path),
        dataset_name=dataset_name,
        dataset_id=stage1_args.data if _is_hub_id(stage1_args.data) else None,
        split=stage1_args.train_split,
        loss_name=type(loss).__name__,
        loss_config=dict(loss.get_config_dict()) if hasattr(loss, "get_config_dict") else {},
        loss_citation=getattr(loss, "citation", None),
        recipe=recipe.to_dict() if recipe is not None else {"name": stage1_args.preset},
        prompts=dict(getattr(model, "prompts", {}) or {}),
        max_seq_length=getattr(model, "max_seq_length", None),
        embedding_dimension=model.get_embedding_dimension(),
        similarity=str(model.similarity_fn_name),
        statistics=dict(statistics),
        arguments=non_default_arguments(stage1_args, _dataclass_defaults(stage1_args)),
        training_arguments=non_default_arguments(training_args, _training_defaults(training_args)),
        evaluation=[dict(row) for row in evaluation],
        license=getattr(stage1_args, "license", None),
        secrets=_secret_values(stage1_args, training_args),
    )


def _front_matter(data: Stage1CardData) -> str:
    meta: dict[str, Any] = {"library_name": "sentence-transformers", "pipeline_tag": "sentence-similarity",
                            "tags": list(data.tags)}
    if data.base_model_on_hub:
        meta["base_model"] = data.base_model
    if data.dataset_id:
        meta["datasets"] = [data.dataset_id]
    if data.license:
        meta["license"] = data.license
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)


def _cell(value: Any) -> str:
    """A value as the text of a Markdown table cell."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text.replace("|", "\\|").replace("\n", " ")


def render_stage1_model_card(data: Stage1CardData) -> str:
    """Render ``hub_cards/model_card.md`` for ``data`` (pure; raises if a secret value would be written)."""
    text = render_card(
        MODEL_CARD_TEMPLATE,
        front_matter=_front_matter(data),
        card=data,
        base_model_link=(f"[{data.base_model}](https://huggingface.co/{data.base_model})" if data.base_model_on_hub
                         else f"`{data.base_model}`"),
        dataset_link=(f"[{data.dataset_name}](https://huggingface.co/datasets/{data.dataset_id})" if data.dataset_id
                      else data.dataset_name),
        loss_config=json.dumps(data.loss_config, indent=2, default=str, ensure_ascii=False),
        arguments={name: _cell(value) for name, value in data.arguments.items()},
        training_arguments={name: _cell(value) for name, value in data.training_arguments.items()},
        evaluation=[{**row, "value": f"{row['value']:.4f}"} for row in data.evaluation],
        sentence_transformers_citation=SENTENCE_TRANSFORMERS_CITATION,
    )
    for secret in data.secrets:
        if secret in text:
            raise ValueError("The rendered model card contains the value of a credential argument; refusing it.")
    return text
