"""US equity sessions (XNYS) as numpy arrays, for deciding when the world's stock feeds print."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np


@dataclass(frozen=True)
class SessionTable:
    opens: np.ndarray  # int64 unix seconds, sorted
    closes: np.ndarray

    @classmethod
    def for_range(cls, start: int, end: int) -> SessionTable:
        import exchange_calendars as xcals  # heavy import, kept off module load

        first = datetime.fromtimestamp(start, UTC).date().isoformat()
        last = datetime.fromtimestamp(end, UTC).date().isoformat()
        cal = xcals.get_calendar("XNYS", start=first, end=last)
        sched = cal.schedule.loc[first:last]
        opens = sched["open"].astype("int64").to_numpy() // 10**9
        closes = sched["close"].astype("int64").to_numpy() // 10**9
        return cls(opens.astype(np.int64), closes.astype(np.int64))

    def is_open(self, t: int) -> bool:
        """True from the open to the close inclusive, so the closing print is published."""
        i = int(np.searchsorted(self.opens, t, side="right")) - 1
        return i >= 0 and t <= int(self.closes[i])
