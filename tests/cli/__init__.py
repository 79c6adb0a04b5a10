"""The operator commands of the CLI."""
