"""Stress harnesses: the kill-fuzz and the corruption fuzz (``python -m pytest -m stress``)."""
