"""Pipe and Connection: one process and child processes."""
