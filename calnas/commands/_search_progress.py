"""`calnas search`'s progress on stderr: a bar for a table search, a line per evaluation for a
live one (the library itself never prints)."""

from __future__ import annotations

import time

from calnas.commands._common import err_console, fmt
from calnas.constraints import total_violation


class _progress:
    """A rich progress bar on stderr, advanced by the search's progress callback."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and err_console.is_terminal
        self._bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("searching"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             console=err_console, transient=True)
        self._bar.start()
        task = self._bar.add_task("search", total=None)

        def advance(done: int, total: int) -> None:
            self._bar.update(task, completed=done, total=total)

        return advance

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()
        return False


class _LiveProgress:
    """One line per live evaluation on stderr (architecture, its result, elapsed time, ETA from
    the mean evaluation time, size of the front so far): rich on a terminal; plain lines with a
    timestamp when stderr is a file or pipe (a background search's log)."""

    def __init__(self, spec, workers, enabled: bool):
        self.enabled = enabled
        self.terminal = err_console.is_terminal
        self.spec = spec  # the search's own, for the objectives' names and directions
        self.workers = max(1, int(workers or 1))
        self.start = time.monotonic()
        self.points: list = []
        self.violations: list[float] = []
        self.seconds: list[float] = []
        self.started = False

    def __call__(self, entries, done: int, budget: int) -> None:
        for entry in entries:
            if entry.seconds is not None:
                self.seconds.append(entry.seconds)
            if entry.values is not None:
                self.points.append(entry.values)
                self.violations.append(total_violation(entry.constraints))
        if not self.enabled:
            return
        if not self.started:
            self.started = True
            if entries:  # the first call holds what a resumed study already has
                self._print(f"resuming: {len(entries)} evaluations already in the study, {done}/{budget} of the budget")
                return
        for entry in entries:
            self._print(self._line(entry, done, budget))

    def front_size(self) -> int:
        import numpy as np

        from calnas import pareto

        if not self.points:
            return 0
        points = pareto.as_minimisation(np.asarray(self.points, dtype=float), self.spec.directions)
        violation = np.asarray(self.violations) if self.spec.constraints else None
        return len(pareto.front_positions(points, violation)[1])

    def _line(self, entry, done: int, budget: int) -> str:
        elapsed = time.monotonic() - self.start
        mean = sum(self.seconds) / len(self.seconds) if self.seconds else None
        eta = "?" if mean is None else _clock(max(0, budget - done) * mean / self.workers)
        if entry.failure is not None:
            result = f"failed: {entry.failure}"
        else:
            result = " ".join(f"{o.name} {fmt(v)}" for o, v in zip(self.spec.objectives, entry.values))
            if entry.cached:
                result += " (from the table, not trained)"
            elif entry.seconds is not None:
                result += f" in {entry.seconds:.2f}s"
        return (f"{done}/{budget} {entry.arch}: {result}; elapsed {_clock(elapsed)}, eta {eta}, "
                f"front {self.front_size()}")

    def _print(self, text: str) -> None:
        if self.terminal:
            err_console.print(f"[dim]live[/dim] {text}", soft_wrap=True, highlight=False)
        else:
            err_console.print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", soft_wrap=True, highlight=False,
                              markup=False)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"
