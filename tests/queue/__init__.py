"""Queue, JoinableQueue, SimpleQueue: one process, processes, ipcfast-only features."""
