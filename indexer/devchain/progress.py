"""Progress of a dev chain's start as plain lines, for output that is not a terminal.

On a terminal `devchain up` draws a progress bar; in a log file, a pipe or CI a bar draws nothing
until it is done, so `PlainProgress` prints one line per step (starting anvil, deploying, planning,
the initial distribution, playing blocks, writing the manifest) and one each time another tenth of
the world's blocks is played, each flushed at once and stamped with the seconds since the start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


class PlainProgress:
    """`phase(text)` and `blocks(done, total)` callbacks for `start_devchain`, written as lines to `out`."""

    def __init__(self, out: TextIO, *, steps: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.steps = steps  # block lines per world: one each time another 1/steps of the blocks is played
        self.clock = clock
        self.started = clock()
        self._shown = 0  # steps of blocks already printed

    def phase(self, text: str) -> None:
        self._line(text)

    def blocks(self, done: int, total: int) -> None:
        if total <= 0:
            return
        step = self.steps if done >= total else done * self.steps // total
        if step > self._shown:
            self._shown = step
            self._line(f"world blocks: {done:,}/{total:,} ({100 * done // total}%)")

    def _line(self, text: str) -> None:
        self.out.write(f"[{self.clock() - self.started:6.1f}s] {text}\n")
        self.out.flush()
