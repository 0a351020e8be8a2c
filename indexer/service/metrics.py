"""A small metrics registry rendered in the Prometheus text exposition format (version 0.0.4).

Pure and thread-safe: jobs update it, the HTTP thread renders it. Names follow Prometheus
conventions (`_total` for counters, base units in the name).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]


@dataclass
class _Metric:
    name: str
    kind: str  # counter | gauge
    help: str
    values: dict[Labels, float] = field(default_factory=dict)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if v != int(v) or abs(v) >= 1e15 else str(int(v))


class Registry:
    def __init__(self, prefix: str = "collateral_indexer_") -> None:
        self.prefix = prefix
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def counter(self, name: str, help: str) -> None:
        self._declare(name, "counter", help)

    def gauge(self, name: str, help: str) -> None:
        self._declare(name, "gauge", help)

    def _declare(self, name: str, kind: str, help: str) -> None:
        with self._lock:
            self._metrics.setdefault(name, _Metric(self.prefix + name, kind, help))

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"counter {name} cannot decrease")
        key = tuple(sorted(labels.items()))
        with self._lock:
            m = self._metrics[name]
            m.values[key] = m.values.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._metrics[name].values[key] = float(value)

    def replace(self, name: str, values: dict[Labels, float]) -> None:
        """Set a labelled gauge's whole series at once (labels absent from `values` disappear)."""
        with self._lock:
            self._metrics[name].values = dict(values)

    def value(self, name: str, **labels: str) -> float | None:
        with self._lock:
            return self._metrics[name].values.get(tuple(sorted(labels.items())))

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for m in self._metrics.values():
                lines.append(f"# HELP {m.name} {m.help}")
                lines.append(f"# TYPE {m.name} {m.kind}")
                for labels, v in sorted(m.values.items()):
                    label_text = ",".join(f'{k}="{_escape(str(val))}"' for k, val in labels)
                    lines.append(f"{m.name}{{{label_text}}} {_number(v)}" if labels else f"{m.name} {_number(v)}")
        return "\n".join(lines) + "\n"
