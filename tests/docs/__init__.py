"""The documentation, run as written."""
