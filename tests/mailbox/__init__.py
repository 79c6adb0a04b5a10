"""Mailbox: one process and across processes."""
