"""Live progress of a run: permanent lines to stdout, and a progress indicator (tqdm, rich,
or a plain status line) when stdout is a terminal."""
from __future__ import annotations

import sys
from typing import Optional


class Reporter:
    """Permanent lines to stdout; a live progress indicator when stdout is a TTY."""

    def __init__(self, total: int, live: bool, verbose: bool) -> None:
        self.total, self.done, self.verbose = total, 0, verbose
        self.bar = None
        self.rich = None
        self.simple = False
        if not live:
            return
        try:
            import tqdm
            tqdm.tqdm.monitor_interval = 0      # no monitor thread: we fork
            self.bar = tqdm.tqdm(total=total, leave=False, dynamic_ncols=True, unit="run",
                                 file=sys.stdout, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                                 "[{elapsed}<{remaining}]")
            return
        except ImportError:
            pass
        try:
            from rich.progress import Progress
            self.rich = Progress(transient=True, auto_refresh=False)
            self.rich.start()
            self.rich_task = self.rich.add_task("bench", total=total)
            return
        except ImportError:
            pass
        self.simple = True

    def line(self, text: str = "") -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        elif self.rich is not None:
            self.rich.console.print(text, markup=False, highlight=False)
            self.rich.refresh()
        else:
            if self.simple:
                sys.stdout.write("\r\033[K")
            print(text, flush=True)

    def status(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(text[:60], refresh=True)
        elif self.rich is not None:
            self.rich.update(self.rich_task, description=text[:60])
            self.rich.refresh()
        elif self.simple:
            sys.stdout.write(f"\r\033[K[{self.done}/{self.total}] {text[:70]}")
            sys.stdout.flush()

    def advance(self, detail: Optional[str] = None) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.rich is not None:
            self.rich.update(self.rich_task, advance=1)
            self.rich.refresh()
        if detail and self.verbose:
            self.line(f"  [{self.done}/{self.total}] {detail}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.rich is not None:
            self.rich.stop()
            self.rich = None
        if self.simple:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()
            self.simple = False

