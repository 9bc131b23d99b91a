"""Stage 1 of Syntriever: distil the LLM's synthetic texts (and gold passages) into a bi-encoder.

* :class:`Stage1Trainer`: a ``SentenceTransformerTrainer`` that checks the stage-1 columns against the loss, never
  splits batches over empty slots (:class:`~syntriever_hf.trainers.sampler.NoDuplicateTextsBatchSampler`), and
  picks the best checkpoint by the dev set's nDCG@10.
* :func:`dev_split`: a seeded dev set carved out of the *training* queries (never the test queries).
* :func:`train_stage1`: the whole run from :class:`~syntriever_hf.trainers.stage1_arguments.Stage1Arguments`: data,
  optional mined negatives, loss columns, training, the saved model with its prompts, and its model card.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from datasets import Dataset, DatasetDict
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.sampler import BatchSamplers
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
from torch import nn

from syntriever_hf.data.stage1_columns import LABEL_COLUMN, QUERY_COLUMN
from syntriever_hf.trainers.sampler import NoDuplicateTextsBatchSampler
from syntriever_hf.trainers.stage1_arguments import RECORDED_PREFIX, Stage1Arguments

if TYPE_CHECKING:
    from syntriever_hf.data.beir import BeirDataset

__all__ = [
    "DevSplit",
    "Stage1Trainer",
    "best_metric_key",
    "build_stage1_loss",
    "dev_split",
    "load_stage1_synthetic",
    "stage1_training_prompts",
    "train_stage1",
]

logger = logging.getLogger(__name__)

_NO_DUPLICATES = (BatchSamplers.NO_DUPLICATES, BatchSamplers.NO_DUPLICATES_HASHED)
_DEFAULT_METRICS = (None, "loss", "eval_loss")


# --- the dev set ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevSplit:
    """Held-out training queries with their positives and a corpus to rank (for model selection, not reporting)."""

    queries: dict[str, str]
    corpus: dict[str, str]
    relevant_docs: dict[str, set[str]]

    @property
    def query_ids(self) -> frozenset[str]:
        return frozenset(self.queries)

    def evaluator(
        self,
        *,
        name: str = "dev",
        batch_size: int = 32,
        similarity_fn_name: str = "cosine",
        show_progress_bar: bool = False,
    ) -> InformationRetrievalEvaluator:
        """An ``InformationRetrievalEvaluator`` over this split; the model's own query/document prompts apply."""
        return InformationRetrievalEvaluator(
            queries=self.queries,
            corpus=self.corpus,
            relevant_docs=self.relevant_docs,
            name=name,
            batch_size=batch_size,
            main_score_function=similarity_fn_name,
            show_progress_bar=show_progress_bar,
        )


def dev_split(
    beir: BeirDataset,
    num_queries: int,
    *,
    split: str = "train",
    seed: int = 0,
    corpus_size: int | None = None,
) -> DevSplit:
    """Hold out ``num_queries`` training queries (seeded) with their positives as a dev set.

    Args:
        beir: The dataset; only queries of the training ``split`` with a positive (score > 0) are eligible.
        num_queries: How many queries to hold out; fewer than the eligible queries, so that some remain to train.
        split: The training split (an evaluation split is refused by ``beir.training_queries``).
        seed: Seed of the query and corpus samples.
        corpus_size: Documents to rank: the held-out queries' positives plus a seeded random sample of the rest
            (``None``: the full corpus).

    The caller must drop the returned ``query_ids`` from the training examples.
    """
    training = beir.training_queries(split)
    relevant = beir.relevant_docs(split)
    texts = dict(zip(training["id"], training["text"], strict=True))
    eligible = sorted(qid for qid in texts if any(score > 0 for score in relevant.get(qid, {}).values()))
    if not 0 < num_queries < len(eligible):
        raise ValueError(
            f"dev_queries={num_queries} but {beir.name}/{split} has {len(eligible)} training queries with a "
            f"positive; hold out between 1 and {len(eligible) - 1} so that some remain to train on."
        )
    chosen = sorted(random.Random(seed).sample(eligible, num_queries))
    relevant_docs = {qid: {doc for doc, score in relevant[qid].items() if score > 0} for qid in chosen}
    corpus = _dev_corpus(beir.corpus_texts(), set().union(*relevant_docs.values()), corpus_size, seed)
    logger.info("Dev set: %d held-out %s queries of %s, ranking %d documents.", len(chosen), split, beir.name,
                len(corpus))
    return DevSplit(queries={qid: texts[qid] for qid in chosen}, corpus=corpus, relevant_docs=relevant_docs)


def _dev_corpus(corpus: dict[str, str], positives: set[str], size: int | None, seed: int) -> dict[str, str]:
    if size is None or size >= len(corpus):
        return corpus
    if size < len(positives):
        raise ValueError(
            f"dev_corpus_size={size} is smaller than the {len(positives)} positives of the dev queries; raise it "
            "or leave it unset for the full corpus."
        )
    others = sorted(doc_id for doc_id in corpus if doc_id not in positives)
    keep = positives | set(random.Random(seed).sample(others, size - len(positives)))
    return {doc_id: text for doc_id, text in corpus.items() if doc_id in keep}


# --- the trainer ---------------------------------------------------------------------------------------------------


def best_metric_key(evaluator: Any, model: SentenceTransformer | None = None) -> str:
    """The trainer's key (``eval_<name>_<similarity>_ndcg@<k>``) of an ``InformationRetrievalEvaluator``'s nDCG."""
    if not isinstance(evaluator, InformationRetrievalEvaluator):
        raise ValueError(
            f"Cannot tell the nDCG key of a {type(evaluator).__name__}; set --metric_for_best_model to one of the "
            "keys it returns (prefixed with 'eval_')."
        )
    if evaluator.main_score_function is not None:
        similarity = evaluator.main_score_function.value
    elif model is not None:
        similarity = model.similarity_fn_name
    else:
        raise ValueError("The evaluator has no main_score_function and no model was given to tell its similarity.")
    name = f"{evaluator.name}_" if evaluator.name else ""
    return f"eval_{name}{similarity}_ndcg@{max(evaluator.ndcg_at_k)}"


def _check_stage1_columns(dataset: Any, loss: nn.Module) -> None:
    """Refuse training columns that do not match the loss's slots (``query``, slot columns, ``label``)."""
    slot_columns = getattr(loss, "slot_columns", None)
    if slot_columns is None or not isinstance(dataset, Dataset | DatasetDict):
        return
    expected = [QUERY_COLUMN, *slot_columns, LABEL_COLUMN]
    for name, part in (dataset.items() if isinstance(dataset, DatasetDict) else [("train_dataset", dataset)]):
        if part.column_names != expected:
            raise ValueError(
                f"{name} has the columns {part.column_names}, but {type(loss).__name__} expects exactly {expected} "
                "in this order. Build them with to_loss_columns(examples, recipe) and give the loss the slot_roles "
                "it returns."
            )


def _select_best_metric(args: SentenceTransformerTrainingArguments, evaluator: Any, model: Any) -> None:
    """With ``load_best_model_at_end``, choose checkpoints by the evaluator's nDCG instead of a missing loss."""
    if not args.load_best_model_at_end:
        if evaluator is not None:
            logger.warning("load_best_model_at_end is off: the result is the last step's model, whatever its dev "
                           "score. Set --load_best_model_at_end true to keep the best checkpoint instead.")
        return
    if evaluator is None or args.metric_for_best_model not in _DEFAULT_METRICS:
        return
    args.metric_for_best_model = best_metric_key(evaluator, model)
    args.greater_is_better = True
    logger.info("The best checkpoint is chosen by %s.", args.metric_for_best_model)


class Stage1Trainer(SentenceTransformerTrainer):
    """``SentenceTransformerTrainer`` for the stage-1 loss columns.

    Differences from the parent:

    * a ``loss`` is required, and the training columns must be exactly ``query``, the loss's slot columns and
      ``label`` (checked before anything is built);
    * ``batch_sampler="no_duplicates"`` uses :class:`NoDuplicateTextsBatchSampler`, which ignores the ``""`` of
      missing slots (the stock sampler would count them as duplicates and split batches);
    * with ``load_best_model_at_end`` and an ``InformationRetrievalEvaluator`` but no explicit
      ``metric_for_best_model``, checkpoints are compared by the evaluator's nDCG@10, not by a loss that does
      not exist without an ``eval_dataset``;
    * the training logs also report ``filled_slots`` (the share of slots holding a text; the rest is masked
      padding) and ``positives_per_query``, summed over all processes.
    """

    def __init__(
        self,
        model: SentenceTransformer | None = None,
        args: SentenceTransformerTrainingArguments | None = None,
        train_dataset: Dataset | DatasetDict | None = None,
        eval_dataset: Dataset | DatasetDict | None = None,
        loss: nn.Module | None = None,
        evaluator: Any = None,
        **kwargs: Any,
    ) -> None:
        if loss is None:
            raise ValueError(
                "Stage1Trainer needs a loss, e.g. SyntrieverLoss(model, slot_roles, recipe=...) with the slot_roles "
                "that to_loss_columns returned."
            )
        if train_dataset is not None:
            _check_stage1_columns(train_dataset, loss)
        if args is not None:
            _select_best_metric(args, evaluator, model)
        self._slot_counts: torch.Tensor | None = None
        super().__init__(
            model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset, loss=loss,
            evaluator=evaluator, **kwargs,
        )

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        if self.model.training:
            self._count_slots(inputs.get(LABEL_COLUMN))
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)

    def _count_slots(self, mask: torch.Tensor | None) -> None:
        """Accumulate (filled slots, present positives, slots, queries) of a training batch's presence mask."""
        roles, recipe = getattr(self.loss, "slot_roles", None), getattr(self.loss, "recipe", None)
        if mask is None or roles is None or recipe is None:
            return
        mask = mask.bool()  # (batch, slots)
        positive = torch.tensor([recipe.is_positive(role) for role in roles], device=mask.device)  # (slots,)
        counts = torch.stack([mask.sum(), (mask & positive).sum(), torch.tensor(mask.numel(), device=mask.device),
                              torch.tensor(mask.size(0), device=mask.device)]).float()
        self._slot_counts = counts if self._slot_counts is None else self._slot_counts + counts

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add ``filled_slots`` (share of slots holding a text) and ``positives_per_query`` to the training logs."""
        if "loss" in logs and self._slot_counts is not None:
            filled, positives, slots, queries = self.accelerator.reduce(self._slot_counts, "sum").tolist()
            logs = {**logs, "filled_slots": round(filled / slots, 4),
                    "positives_per_query": round(positives / queries, 4)}
            self._slot_counts = None
        return super().log(logs, start_time)

    def get_batch_sampler(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
    ) -> Any:
        if self.args.batch_sampler in _NO_DUPLICATES and isinstance(dataset, Dataset):
            return NoDuplicateTextsBatchSampler(
                dataset, batch_size=batch_size, drop_last=drop_last, valid_label_columns=valid_label_columns,
                generator=generator, seed=seed,
            )
        return super().get_batch_sampler(
            dataset, batch_size=batch_size, drop_last=drop_last, valid_label_columns=valid_label_columns,
            generator=generator, seed=seed,
        )


# --- building blocks of a run --------------------------------------------------------------------------------------


def load_stage1_synthetic(spec: str | None, beir: BeirDataset, *, split: str = "train") -> Dataset | None:
    """The synthetic data named by ``--synthetic``: ``None``, ``recorded:<folder>``, or a ``save_to_disk`` folder."""
    if spec is None:
        return None
    if spec.startswith(RECORDED_PREFIX):
        from syntriever_hf.data.recorded import load_recorded_stage1

        return load_recorded_stage1(spec[len(RECORDED_PREFIX):], beir, split=split)
    from datasets import load_from_disk

    path = Path(spec).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"--synthetic {spec!r}: no such folder. Pass a folder written by Dataset.save_to_disk, or "
            f"'{RECORDED_PREFIX}<folder>' for recorded LLM answers."
        )
    synthetic = load_from_disk(str(path))
    if isinstance(synthetic, DatasetDict):
        raise ValueError(
            f"--synthetic {spec!r} holds a DatasetDict with splits {list(synthetic)}; pass the folder of one split "
            f"(e.g. {str(path / next(iter(synthetic)))!r})."
        )
    return synthetic


def stage1_training_prompts(columns: Dataset, query_prompt: str, document_prompt: str) -> dict[str, str] | None:
    """Per-column training prompts: the query prompt on ``query``, the document prompt on every slot column."""
    prompts = {
        column: query_prompt if column == QUERY_COLUMN else document_prompt
        for column in columns.column_names
        if column != LABEL_COLUMN
    }
    prompts = {column: prompt for column, prompt in prompts.items() if prompt}
    return prompts or None


def build_stage1_loss(model: SentenceTransformer, slot_roles: tuple[str, ...], args: Stage1Arguments) -> nn.Module:
    """``SyntrieverLoss`` (or ``CachedSyntrieverLoss`` with ``args.cached``) for the given slots."""
    from syntriever_hf.losses import CachedSyntrieverLoss, SyntrieverLoss

    options = {"recipe": args.preset, "scale": args.scale, "gather_across_devices": args.gather_across_devices}
    if args.cached:
        return CachedSyntrieverLoss(model, slot_roles, mini_batch_size=args.mini_batch_size, **options)
    return SyntrieverLoss(model, slot_roles, **options)


def _load_base_model(
    args: Stage1Arguments, training_args: SentenceTransformerTrainingArguments
) -> SentenceTransformer:
    """The base model, with the prompts (saved with the model) and the sequence length of ``args``."""
    model = SentenceTransformer(args.model_name_or_path, device="cpu" if training_args.use_cpu else None)
    if args.max_seq_length is not None:
        model.max_seq_length = args.max_seq_length
    model.prompts = {
        name: prompt for name, prompt in (("query", args.query_prompt), ("document", args.document_prompt)) if prompt
    }
    return model


def _check_evaluation(args: Stage1Arguments, training_args: SentenceTransformerTrainingArguments) -> None:
    evaluating = training_args.eval_strategy != "no"
    if args.dev_queries == 0 and evaluating:
        raise ValueError(
            f"dev_queries=0 leaves nothing to evaluate, but eval_strategy={training_args.eval_strategy.value!r}. "
            "Either hold out a dev set (--dev_queries 50) or turn evaluation off: --eval_strategy no "
            "--load_best_model_at_end false."
        )
    if args.dev_queries > 0 and not evaluating:
        raise ValueError(
            f"dev_queries={args.dev_queries} holds out training queries, but eval_strategy='no' never evaluates "
            "them. Set --eval_strategy epoch (or steps), or --dev_queries 0 to train on every query."
        )
    if training_args.prompts is not None:
        raise ValueError(
            f"prompts={training_args.prompts!r} is set in the training arguments; stage 1 sets the per-column "
            "prompts itself: use --query_prompt and --document_prompt ('' for none) instead."
        )


_LLM_ROLES = ("llm_positive", "cot", "llm_negative", "rejected_positive")


def _warn_about_empty_roles(args: Stage1Arguments) -> None:
    """Say so when the recipe names LLM roles but no synthetic data is given: only its other roles will train."""
    from syntriever_hf.data.stage1_columns import resolve_recipe

    unused = [role for role in resolve_recipe(args.preset).roles if role in _LLM_ROLES]
    if args.synthetic is None and unused:
        logger.warning("preset=%r uses the LLM roles %s but --synthetic is unset: no example has those texts, so "
                       "only the recipe's other roles train (as --preset gold would).", args.preset, unused)


def _resume_checkpoint(value: str | None) -> str | bool | None:
    """``--resume_from_checkpoint``: a checkpoint folder, or ``last``/``true`` for the newest one of output_dir."""
    if value is None or str(value).lower() in ("", "false", "no"):
        return None
    return True if str(value).lower() in ("last", "true", "yes") else value


def _drop_queries(examples: Dataset, query_ids: frozenset[str]) -> Dataset:
    return examples.filter(lambda query_id: query_id not in query_ids, input_columns="query_id",
                           desc="Holding out the dev queries")


# --- the run -------------------------------------------------------------------------------------------------------


def train_stage1(
    args: Stage1Arguments,
    training_args: SentenceTransformerTrainingArguments,
    *,
    callbacks: list[Any] | None = None,
) -> Path:
    """Train a stage-1 retriever and save it (with its prompts and model card) to ``training_args.output_dir``.

    Steps: seed; load the base model (prompts set on it) and the BEIR data; hold out the dev queries; load the
    synthetic data; mine hard negatives with the base model if asked; build the training examples and the loss
    columns of the recipe; train with :class:`Stage1Trainer` (resuming if ``resume_from_checkpoint`` says so);
    save the best model and write ``README.md``; optionally evaluate on ``args.evaluate_split`` with MTEB first.

    ``training_args.prompts`` is filled in (query prompt on ``query``, document prompt on every slot column); it
    must be unset on entry.

    Returns:
        The output folder, loadable with a stock ``SentenceTransformer(path)``.
    """
    from transformers import set_seed

    from syntriever_hf.data import load_beir
    from syntriever_hf.data.stage1 import build_stage1_examples, stage1_statistics
    from syntriever_hf.data.stage1_columns import to_loss_columns

    _check_evaluation(args, training_args)
    _warn_about_empty_roles(args)
    set_seed(training_args.seed)
    model = _load_base_model(args, training_args)
    beir = load_beir(args.data)
    dev = (dev_split(beir, args.dev_queries, split=args.train_split, seed=training_args.seed,
                     corpus_size=args.dev_corpus_size) if args.dev_queries else None)
    mined = _mine(model, beir, args, training_args) if args.num_mined_negatives else None
    synthetic = load_stage1_synthetic(args.synthetic, beir, split=args.train_split)
    examples = build_stage1_examples(beir, split=args.train_split, synthetic=synthetic, mined_negatives=mined)
    if dev is not None:
        examples = _drop_queries(examples, dev.query_ids)
    columns, slot_roles = to_loss_columns(examples, args.preset, max_gold=args.max_gold,
                                          max_mined_negatives=args.num_mined_negatives or None)
    training_args.prompts = stage1_training_prompts(columns, args.query_prompt, args.document_prompt)
    evaluator = (dev.evaluator(batch_size=training_args.per_device_eval_batch_size,
                               similarity_fn_name=model.similarity_fn_name) if dev is not None else None)
    trainer = Stage1Trainer(model=model, args=training_args, train_dataset=columns,
                            loss=build_stage1_loss(model, slot_roles, args), evaluator=evaluator, callbacks=callbacks)
    trainer.train(resume_from_checkpoint=_resume_checkpoint(training_args.resume_from_checkpoint))
    output_dir = Path(training_args.output_dir)
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        statistics = {**stage1_statistics(examples), "training_rows": len(columns),
                      "dev_queries": len(dev.queries) if dev else 0}
        _write_card(trainer, args, beir, statistics, _final_scores(trainer, args, beir), output_dir)
    return output_dir


def _mine(model: SentenceTransformer, beir: BeirDataset, args: Stage1Arguments,
          training_args: SentenceTransformerTrainingArguments) -> dict[str, list[str]]:
    from syntriever_hf.retrieval import mine_hard_negatives

    return mine_hard_negatives(
        model, beir, split=args.train_split, num_negatives=args.num_mined_negatives,
        range_min=args.mining_range_min, range_max=args.mining_range_max, relative_margin=args.mining_relative_margin,
        batch_size=training_args.per_device_eval_batch_size,
    )


def _final_scores(trainer: Stage1Trainer, args: Stage1Arguments, beir: BeirDataset) -> list[dict[str, Any]]:
    """The evaluation rows of the card: the best dev score, and the MTEB scores of ``args.evaluate_split``."""
    rows: list[dict[str, Any]] = []
    if trainer.state.best_metric is not None:
        rows.append({"dataset": f"{beir.name} (dev: {args.dev_queries} held-out {args.train_split} queries)",
                     "split": args.train_split, "metric": trainer.args.metric_for_best_model,
                     "value": float(trainer.state.best_metric)})
    if args.evaluate_split:
        from syntriever_hf.evaluation import evaluate_retrieval

        scores = evaluate_retrieval(trainer.model, beir, split=args.evaluate_split,
                                    batch_size=trainer.args.per_device_eval_batch_size)
        rows.extend({"dataset": beir.name, "split": args.evaluate_split, "metric": metric, "value": value}
                    for metric, value in scores.table_row().items())
    return rows


def _write_card(trainer: Stage1Trainer, args: Stage1Arguments, beir: BeirDataset, statistics: Mapping[str, int],
                evaluation: list[dict[str, Any]], output_dir: Path) -> None:
    from syntriever_hf.hub.model_card import render_stage1_model_card, stage1_card_data

    card = stage1_card_data(
        model=trainer.model, loss=trainer.loss, stage1_args=args, training_args=trainer.args,
        dataset_name=beir.name, statistics=statistics, evaluation=evaluation,
    )
    (output_dir / "README.md").write_text(render_stage1_model_card(card), encoding="utf-8")
    logger.info("Saved the stage-1 model and its card to %s", output_dir)
