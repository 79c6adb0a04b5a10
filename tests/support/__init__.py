"""What the test directories share.

* :mod:`tests.support.shm` - /dev/shm paths, listings and clean-up, fresh names, and the
  few facts about a segment's inside that tests look at (record sizes, sleepers, transit);
* :mod:`tests.support.procs` - start methods, the implementations under test, waiting,
  joining and killing children, arguments that delay a child's unpickling, fresh
  interpreters;
* :mod:`tests.support.leaks` - the leak check every test and every benchmark runs under.

``shm`` and ``procs`` import only the standard library and ipcfast, so spawn and forkserver
children that import them (through the ``workers`` modules) start fast; ``leaks`` imports
pytest and is for the test process only. Nothing is imported here, for the same reason.
"""
