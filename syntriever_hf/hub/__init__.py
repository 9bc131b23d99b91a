"""Hub layer: card rendering (pure, ``cards``) and publishing of datasets and checkpoints."""

from syntriever_hf.hub.cards import render_card, template_text

__all__ = ["render_card", "template_text"]
