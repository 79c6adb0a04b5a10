"""Tests of the public surface as a whole (bad input across every class)."""
