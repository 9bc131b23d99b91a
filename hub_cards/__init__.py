"""Jinja templates of the model and dataset cards (package data)."""
