"""ipcfast's test suite, one directory per concept:

    ring/      Ring in one process, with threads, between processes
    queue/     Queue / JoinableQueue / SimpleQueue (against multiprocessing too), ipcfast-only
    pipe/      Pipe / Connection (against multiprocessing too)
    mailbox/   Mailbox in one process and across processes
    lifetime/  who removes a segment and when: queue lifetime, SIGKILL chaos, handles in
               transit, the leak check itself
    layout/    the shared-memory layout cffi sees against the C compiler's
    cli/       ipcfast ls / stat / rm / gc
    bench/     the comparison runner behind `python -m ipcfast bench`
    support/   what the directories share: /dev/shm helpers, process helpers, the leak check

Every directory is a package, so modules of the same name in different directories
(test_processes.py, workers.py) do not clash, and child processes started by spawn or
forkserver import their targets by the full module name (``tests.queue.workers``); the
repository root is on sys.path (``pythonpath`` in pyproject.toml).
"""
