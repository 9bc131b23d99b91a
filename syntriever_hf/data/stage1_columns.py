"""Stage-1 recipes and the loss columns they select from stage-1 training examples.

A *recipe* says, per text role of a training example (``STAGE1_ROLES``), whether its texts are positives or
negatives of the query, and how the positives are scored (one shared log-sum-exp, or one InfoNCE term each).
:func:`to_loss_columns` turns training examples (``STAGE1_TRAINING_FEATURES``: one row per query, one column per
role) into the flat columns a sentence-transformers loss receives: ``query``, one text column per *slot*, then a
``label`` presence mask. The recipe and the slot roles are shared with :mod:`syntriever_hf.losses`, which does not
need anything else from this package.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow.compute as pc
from datasets import Dataset, Features, Sequence, Value

from syntriever_hf.data.schema import STAGE1_LIST_ROLES, STAGE1_ROLES

__all__ = [
    "DEFAULT_STAGE1_PRESET",
    "GROUPINGS",
    "LABEL_COLUMN",
    "QUERY_COLUMN",
    "STAGE1_PRESETS",
    "Stage1Recipe",
    "resolve_recipe",
    "slot_column_names",
    "to_loss_columns",
]

logger = logging.getLogger(__name__)

#: How the positives of a query are scored: one log-sum-exp over the group, or one InfoNCE term each.
GROUPINGS = ("grouped", "per_positive")
QUERY_COLUMN = "query"
#: The presence mask column; sentence-transformers' collator hands a column of this name to the loss as ``labels``.
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class Stage1Recipe:
    """Which text roles are positives and which are negatives of a query, and how positives are scored.

    Args:
        positive_roles: roles whose texts form the query's positives (at least one).
        negative_roles: roles whose texts are extra negatives of the query (may be empty: in-batch only).
            Roles in neither tuple are not used.
        grouping: ``"grouped"`` (the paper: one log-sum-exp over all positives in the numerator) or
            ``"per_positive"`` (each positive its own InfoNCE term, not competing with its siblings).
        name: the preset name, or ``None`` for a custom recipe (reported in configs and model cards).
    """

    positive_roles: tuple[str, ...]
    negative_roles: tuple[str, ...] = ()
    grouping: Literal["grouped", "per_positive"] = "per_positive"
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "positive_roles", _checked_roles("positive_roles", self.positive_roles))
        object.__setattr__(self, "negative_roles", _checked_roles("negative_roles", self.negative_roles))
        if not self.positive_roles:
            raise ValueError(f"positive_roles is empty; name at least one of {STAGE1_ROLES}, e.g. ('gold',).")
        both = [role for role in self.positive_roles if role in self.negative_roles]
        if both:
            raise ValueError(
                f"Role(s) {both} appear in both positive_roles {self.positive_roles} and negative_roles "
                f"{self.negative_roles}; a role is either a positive or a negative, remove it from one of them."
            )
        if self.grouping not in GROUPINGS:
            raise ValueError(f"grouping={self.grouping!r} is not one of {GROUPINGS}.")

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles this recipe uses, in the canonical order of ``STAGE1_ROLES``."""
        used = set(self.positive_roles) | set(self.negative_roles)
        return tuple(role for role in STAGE1_ROLES if role in used)

    def is_positive(self, role: str) -> bool:
        """Whether ``role`` is a positive role of this recipe."""
        return role in self.positive_roles

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (for ``get_config_dict`` and model cards)."""
        return {
            "name": self.name,
            "positive_roles": list(self.positive_roles),
            "negative_roles": list(self.negative_roles),
            "grouping": self.grouping,
        }


def _checked_roles(argument: str, roles: Iterable[str]) -> tuple[str, ...]:
    if isinstance(roles, str):
        raise TypeError(f"{argument} must be a tuple of role names, got the string {roles!r}; write ({roles!r},).")
    roles = tuple(roles)
    unknown = [role for role in roles if role not in STAGE1_ROLES]
    if unknown:
        raise ValueError(f"Unknown role(s) {unknown} in {argument}; the stage-1 roles are {STAGE1_ROLES}.")
    duplicated = sorted({role for role in roles if roles.count(role) > 1})
    if duplicated:
        raise ValueError(f"Role(s) {duplicated} listed more than once in {argument}={roles}.")
    return roles


_ALL_NEGATIVES = ("llm_negative", "rejected_positive", "mined_negative")

#: Named recipes. ``mined_negative`` is a negative in every preset: it costs nothing when no negatives were mined.
STAGE1_PRESETS: dict[str, Stage1Recipe] = {
    recipe.name: recipe
    for recipe in (
        # The formula of the paper (METHOD.md): {gold, verified p+, CoT} share one log-sum-exp numerator.
        Stage1Recipe(("gold", "llm_positive", "cot"), _ALL_NEGATIVES, "grouped", name="paper"),
        # What the authors' scripts computed: plain InfoNCE on the gold passage; every LLM text a negative.
        Stage1Recipe(
            ("gold",), ("llm_positive", "cot", "llm_negative", "rejected_positive", "mined_negative"),
            "per_positive", name="authors-code",
        ),
        # Gold and verified p+ each their own InfoNCE term; CoT unused (the best row of benchmarks/stage1_ladder.py).
        Stage1Recipe(("gold", "llm_positive"), _ALL_NEGATIVES, "per_positive", name="per-positive"),
        # The paper's log-sum-exp numerator without the CoT text.
        Stage1Recipe(("gold", "llm_positive"), _ALL_NEGATIVES, "grouped", name="grouped"),
        # Baselines: the gold passage alone, and with the LLM's hard negative.
        Stage1Recipe(("gold",), ("mined_negative",), "per_positive", name="gold"),
        Stage1Recipe(("gold",), ("llm_negative", "mined_negative"), "per_positive", name="gold-llm-negative"),
        # Zero-label: no gold passage at all, only what the LLM wrote (its verified passage and the CoT text).
        Stage1Recipe(
            ("llm_positive", "cot"), ("llm_negative", "rejected_positive", "mined_negative"), "per_positive",
            name="zero-label",
        ),
    )
}

#: The preset used when none is named: change it here, in one place, when the benchmark selects another.
DEFAULT_STAGE1_PRESET = "per-positive"


def resolve_recipe(recipe: Stage1Recipe | str) -> Stage1Recipe:
    """Return ``recipe`` itself, or the preset of that name from ``STAGE1_PRESETS``."""
    if isinstance(recipe, Stage1Recipe):
        return recipe
    if isinstance(recipe, str) and recipe in STAGE1_PRESETS:
        return STAGE1_PRESETS[recipe]
    raise ValueError(
        f"Unknown stage-1 recipe {recipe!r}; use one of the presets {sorted(STAGE1_PRESETS)} or a Stage1Recipe."
    )


def slot_column_names(slot_roles: Iterable[str]) -> tuple[str, ...]:
    """Column names of the slots: list roles are numbered from 1 (``gold_1``, ``gold_2``), others keep their name."""
    slot_roles = tuple(slot_roles)
    counts: dict[str, int] = {}
    names = []
    for role in slot_roles:
        counts[role] = counts.get(role, 0) + 1
        names.append(f"{role}_{counts[role]}" if role in STAGE1_LIST_ROLES else role)
    return tuple(names)


def to_loss_columns(
    examples: Dataset,
    recipe: Stage1Recipe | str,
    *,
    max_gold: int | None = None,
    max_mined_negatives: int | None = None,
) -> tuple[Dataset, tuple[str, ...]]:
    """Turn stage-1 training examples into the columns of :class:`~syntriever_hf.losses.SyntrieverLoss`.

    Args:
        examples: rows of ``STAGE1_TRAINING_FEATURES`` (``query`` and at least the roles the recipe uses).
        recipe: a :class:`Stage1Recipe` or the name of a preset in ``STAGE1_PRESETS``.
        max_gold: keep at most this many gold passages per query (default: as many as the richest row has).
        max_mined_negatives: keep at most this many mined negatives per query (default: as many as there are).

    Returns:
        ``(columns, slot_roles)``. ``columns`` has ``query``, then one text column per slot in the canonical role
        order (``gold_1..gold_G``, ``llm_positive``, ``cot``, ``llm_negative``, ``rejected_positive``,
        ``mined_negative_1..M``; only the recipe's roles), then ``label``: one 0/1 per slot, 0 where the text is
        missing (written as ``""``). ``slot_roles`` names the role of each slot, e.g. ``("gold", "gold",
        "llm_positive", "llm_negative")``. Rows without any present positive are dropped (one warning with the count).
        A single-text role that no row has (say, the LLM roles of data without synthetic texts) gets no slot.
    """
    recipe = resolve_recipe(recipe)
    caps = {"gold": ("max_gold", max_gold), "mined_negative": ("max_mined_negatives", max_mined_negatives)}
    for argument, cap in caps.values():
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"{argument} must be a positive integer or None (no cap), got {cap!r}.")
    _check_columns(examples, recipe)
    widths = {
        role: _list_width(examples, role, cap, argument) if role in recipe.roles else 0
        for role, (argument, cap) in caps.items()
    }
    used_roles = _roles_with_text(examples, recipe)
    slot_roles = tuple(
        slot_role
        for role in used_roles
        for slot_role in ([role] * widths[role] if role in STAGE1_LIST_ROLES else [role])
    )
    if not any(recipe.is_positive(role) for role in slot_roles):
        raise _no_positive_error(recipe)
    names = slot_column_names(slot_roles)
    features = Features(
        {QUERY_COLUMN: Value("string"), **{name: Value("string") for name in names},
         LABEL_COLUMN: Sequence(Value("int8"))}
    )
    columns = examples.map(
        _rows_to_slots,
        batched=True,
        fn_kwargs={"recipe_roles": used_roles, "widths": widths, "names": names},
        remove_columns=examples.column_names,
        features=features,
        desc="Building stage-1 loss columns",
    )
    positive_slots = [recipe.is_positive(role) for role in slot_roles]
    kept = columns.filter(
        _has_positive,
        input_columns=LABEL_COLUMN,
        batched=True,
        fn_kwargs={"positive_slots": positive_slots},
        desc="Dropping rows without a positive",
    )
    if len(columns) and not len(kept):
        raise _no_positive_error(recipe)
    dropped = len(columns) - len(kept)
    if dropped:
        logger.warning(
            "Dropped %d of %d stage-1 examples with no text for the positive roles %s of recipe %r.",
            dropped, len(columns), recipe.positive_roles, recipe.name or "custom",
        )
    return kept, slot_roles


def _roles_with_text(examples: Dataset, recipe: Stage1Recipe) -> tuple[str, ...]:
    """The recipe's roles minus the single-text roles that are missing in every row (list roles: see widths)."""
    empty = [
        role for role in recipe.roles
        if role not in STAGE1_LIST_ROLES and not any(_present(text) for text in examples[role])
    ]
    if empty:
        logger.info("No stage-1 example has a text for %s; recipe %r gets no slot for them.", empty,
                    recipe.name or "custom")
    return tuple(role for role in recipe.roles if role not in empty)


def _check_columns(examples: Dataset, recipe: Stage1Recipe) -> None:
    missing = [name for name in (QUERY_COLUMN, *recipe.roles) if name not in examples.column_names]
    if missing:
        raise ValueError(
            f"The stage-1 examples lack the column(s) {missing} that recipe {recipe.name or 'custom'!r} needs; "
            f"they have {examples.column_names}. Build them with the STAGE1_TRAINING_FEATURES schema "
            f"(syntriever_hf.data.schema) or pick a recipe without those roles."
        )


def _no_positive_error(recipe: Stage1Recipe) -> ValueError:
    return ValueError(
        f"No stage-1 example has a text for the positive roles {recipe.positive_roles} of recipe "
        f"{recipe.name or 'custom'!r}: every row would be dropped. Check the examples (were they verified?) or pick "
        f"a recipe whose positive roles they fill."
    )


def _list_width(examples: Dataset, role: str, cap: int | None, argument: str) -> int:
    longest = pc.max(pc.list_value_length(examples.with_format("arrow")[role])).as_py() or 0
    if cap is not None and longest > cap:
        logger.info("Keeping the first %d of up to %d %r texts per query (%s=%d).", cap, longest, role, argument, cap)
        return cap
    return longest


def _present(text: str | None) -> bool:
    return bool(text and text.strip())


def _rows_to_slots(
    batch: Mapping[str, list[Any]], recipe_roles: tuple[str, ...], widths: Mapping[str, int], names: tuple[str, ...]
) -> dict[str, list[Any]]:
    rows = len(batch[QUERY_COLUMN])
    texts_per_slot: list[list[str | None]] = []
    for role in recipe_roles:
        if role in STAGE1_LIST_ROLES:
            for position in range(widths[role]):
                texts_per_slot.append(
                    [texts[position] if texts and position < len(texts) else None for texts in batch[role]]
                )
        else:
            texts_per_slot.append(list(batch[role]))
    output: dict[str, list[Any]] = {QUERY_COLUMN: list(batch[QUERY_COLUMN])}
    for name, texts in zip(names, texts_per_slot, strict=True):
        output[name] = [text if _present(text) else "" for text in texts]
    output[LABEL_COLUMN] = [[int(_present(texts[row])) for texts in texts_per_slot] for row in range(rows)]
    return output


def _has_positive(labels: list[list[int]], positive_slots: list[bool]) -> list[bool]:
    return [any(present and positive for present, positive in zip(row, positive_slots, strict=True)) for row in labels]
