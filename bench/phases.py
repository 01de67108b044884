"""Wall time per step of Chaser's code, for the benchmarks' ``--profile``, without changing it.

``wrap(owner, name, label)`` replaces a function or method with a timing wrapper (``restore()``
puts it back); the SQL each engine runs is timed through SQLAlchemy's cursor events and
labelled ``SQL VERB table``. Steps nest, so the times do not add up to the total.
"""
from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, event

_MISSING = object()


class Phases:
    def __init__(self, *engines: Engine) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.undo: list[tuple[Any, str, Any]] = []
        for engine in dict.fromkeys(engines):  # once each, in order
            event.listen(engine, "before_cursor_execute", self._before)
            event.listen(engine, "after_cursor_execute", self._after)

    def wrap(self, owner: Any, name: str, label: str) -> None:
        function = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - started)

        # What the owner itself held: on restore, an inherited method is uncovered again.
        self.undo.append((owner, name, vars(owner).get(name, _MISSING) if hasattr(owner, "__dict__") else function))
        setattr(owner, name, wrapper)

    def restore(self) -> None:
        for owner, name, original in reversed(self.undo):
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self.undo.clear()

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.calls[name] = self.calls.get(name, 0) + 1

    def report(self) -> dict[str, list[float]]:
        """``{step: [seconds, calls]}``, for a measuring subprocess to hand back as JSON."""
        return {name: [self.seconds[name], self.calls[name]] for name in self.seconds}

    def print(self, total: float) -> None:
        for name, seconds in sorted(self.seconds.items(), key=lambda kv: -kv[1]):
            print(f"    {seconds:7.3f} s {100 * seconds / total:5.1f}%  {self.calls[name]:6d} call(s)  {name}")

    @staticmethod
    def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        words = statement.split()
        table = next((w for w, prev in zip(words[1:], words) if prev.upper() in ("FROM", "INTO", "UPDATE")), "?")
        label = f"SQL {words[0].upper()} {table}{' (executemany)' if executemany else ''}"
        self.add(label, time.perf_counter() - conn.info.pop("bench_started"))
