"""Rendering of the card templates packaged in ``hub_cards/`` (pure: no network, no pushing)."""

from __future__ import annotations

from importlib import resources

import jinja2

__all__ = ["render_card", "template_text"]


def template_text(template_name: str) -> str:
    """Return the text of a packaged card template, e.g. ``"model_card.md"``."""
    package = resources.files("syntriever_hf.hub_cards")
    path = package / template_name
    if not path.is_file():
        available = sorted(p.name for p in package.iterdir() if p.name.endswith(".md"))
        raise FileNotFoundError(f"No card template {template_name!r} in hub_cards/; available: {available}")
    return path.read_text(encoding="utf-8")


def render_card(template_name: str, **context: object) -> str:
    """Render a packaged template with ``StrictUndefined``: a misspelt or missing variable raises, never blanks."""
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True
    )
    return environment.from_string(template_text(template_name)).render(**context)
