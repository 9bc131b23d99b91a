"""Token prices (USD per million tokens) and cost estimates; the Batch API costs half.

The defaults are OpenAI's published list prices for a few chat models (standard tier, as of 2025); prices change,
so pass your own table (``--prices FILE``, JSON or YAML) for anything that matters:

.. code-block:: yaml

    gpt-4o-mini: {input: 0.15, output: 0.60}
    my-local-model: {input: 0, output: 0}
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BATCH_DISCOUNT", "DEFAULT_PRICES", "ModelPrice", "PriceTable", "load_price_table"]

logger = logging.getLogger(__name__)

#: The Batch API's price relative to online requests.
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class ModelPrice:
    """USD per one million input (prompt) and output (completion) tokens."""

    input: float
    output: float

    def __post_init__(self) -> None:
        for name in ("input", "output"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"price {name!r} must be a number >= 0 (USD per 1M tokens), got {value!r}")


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4.1": ModelPrice(2.00, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-3.5-turbo": ModelPrice(0.50, 1.50),
}

_DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class PriceTable:
    """Prices per model; a dated snapshot (``gpt-4o-mini-2024-07-18``) falls back to its base name."""

    prices: Mapping[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    def price(self, model: str) -> ModelPrice | None:
        """The price of ``model``, or ``None`` when the table does not know it."""
        if model in self.prices:
            return self.prices[model]
        return self.prices.get(_DATE_SUFFIX.sub("", model))

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, *, batch: bool = False) -> float | None:
        """Estimated USD for one request, or ``None`` for a model without a price."""
        price = self.price(model)
        if price is None:
            return None
        usd = (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000
        return usd * BATCH_DISCOUNT if batch else usd

    def with_overrides(self, overrides: Mapping[str, ModelPrice]) -> PriceTable:
        """A new table: these prices on top of this table's."""
        return PriceTable({**self.prices, **overrides})


def _parse_entry(model: str, entry: object, source: str) -> ModelPrice:
    if not isinstance(entry, Mapping) or set(entry) != {"input", "output"}:
        raise ValueError(
            f"{source}: the price of {model!r} must be a mapping with exactly the keys 'input' and 'output' "
            f"(USD per 1M tokens), got {entry!r}; e.g. {model}: {{input: 0.15, output: 0.60}}"
        )
    try:
        return ModelPrice(float(entry["input"]), float(entry["output"]))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: the price of {model!r} is invalid: {error}") from None


def load_price_table(path: str | Path | None, *, base: PriceTable | None = None) -> PriceTable:
    """The default table, overridden by a JSON or YAML file ``{model: {input, output}}`` when ``path`` is given."""
    table = base or PriceTable()
    if path is None:
        return table
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--prices: no such file {str(path)!r}; pass a JSON or YAML file of prices")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ValueError(f"{path}: not valid JSON ({error}); use a .yaml/.yml suffix for YAML") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of model name to {{input, output}}, got {type(data).__name__}")
    overrides = {str(model): _parse_entry(str(model), entry, str(path)) for model, entry in data.items()}
    logger.info("Loaded prices for %d model(s) from %s", len(overrides), path)
    return table.with_overrides(overrides)
