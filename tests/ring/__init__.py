"""Ring: one process, threads, processes."""
