"""The shared-memory layout seen through cffi against the C sources."""
