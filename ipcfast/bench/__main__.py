"""``python -m ipcfast.bench``: the same as ``python -m ipcfast bench``."""
import sys

from .runner import main

sys.exit(main())
