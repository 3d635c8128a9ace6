"""Early-stopping settings of a multi-fidelity search, and the monitor a training consults.

A :class:`Fidelity` holds what the user chose (``--early-stopping``, ``--min-epochs``, ``--eta``,
``--rung-metric``, ``--budget-epochs``, simulated workers) and makes the pruner
(:class:`calnas.pruners.MultiObjectiveSuccessiveHalving`) for a schedule of ``max_epochs``. A
simulated search (:mod:`calnas.simulation`) replays a curve table with it; a live one hands each
training a :class:`RungMonitor`, which reports the training's curve point at each of the trial's
rungs to the pruner (stored with the trial, decided from the study) and says whether to stop.

The engine side only: nothing here knows how a training runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from calnas.errors import UserError

EARLY_STOPPING = ("none", "asha", "hyperband")
# What is ranked at a rung when the user does not say: validation-split accuracy and NLL, which a
# live search sees without the test labels. Measured with benchmarks/early_stopping.py
# rung-metrics (docs/search.md, "Early stopping"): of the validation pairs it ranks nearest the
# final (acc, ECE) order at every rung.
DEFAULT_RUNG_METRIC = ("val_acc", "val_NLL")
_DIRECTION_OF = {"val_acc": "maximize", "acc": "maximize", "train_acc": "maximize"}
# Point columns that are not rankable: the time a point cost and the temperature fitted there.
_NOT_RANKED = ("cpu_seconds", "temperature")


@dataclass(frozen=True)
class Fidelity:
    """Early-stopping settings of a (simulated or live) multi-fidelity search."""

    early_stopping: str = "none"
    min_epochs: int = 1
    eta: int = 2
    rung_metric: tuple[str, ...] | str | None = DEFAULT_RUNG_METRIC
    budget_epochs: int | None = None
    workers: int = 1

    def checked(self, last_epoch: int, epochs=None) -> "Fidelity":
        """The settings checked for a schedule of ``last_epoch`` epochs whose curve points are
        recorded at ``epochs`` (a curve table's; None: any epoch, as a live training records)."""
        from calnas.checks import check_int
        from calnas.curve_layout import POINT_COLUMNS

        mode = str(self.early_stopping).lower()
        if mode not in EARLY_STOPPING:
            raise UserError(f"unknown early stopping {self.early_stopping!r}; expected one of {', '.join(EARLY_STOPPING)}")
        workers = check_int("simulated workers", self.workers, minimum=1, maximum=4096)
        budget_epochs = None if self.budget_epochs is None else check_int("budget epochs", self.budget_epochs, minimum=1)
        given = DEFAULT_RUNG_METRIC if self.rung_metric is None else self.rung_metric  # None: the user said nothing
        metric = tuple(str(m).strip() for m in (given.split(",") if isinstance(given, str) else given) if str(m).strip())
        unknown = [m for m in metric if m not in POINT_COLUMNS or m in _NOT_RANKED]
        if not metric or unknown:
            rankable = [c for c in POINT_COLUMNS if c not in _NOT_RANKED]
            raise UserError(f"unknown rung metric {', '.join(unknown) or '(empty)'}; a training's curve records "
                            f"{', '.join(rankable)} at each epoch")
        out = Fidelity(mode, self.min_epochs, self.eta, metric, budget_epochs, workers)
        if mode != "none":
            out.pruner(last_epoch, epochs)  # rungs that do not fit are refused before any work
        return out

    def pruner(self, last_epoch: int, epochs=None):
        from calnas.pruners import MultiObjectiveSuccessiveHalving, max_brackets

        directions = [_DIRECTION_OF.get(m, "minimize") for m in self.rung_metric]
        brackets = max_brackets(self.min_epochs, self.eta, last_epoch) if self.early_stopping == "hyperband" else 1
        pruner = MultiObjectiveSuccessiveHalving(directions, min_epochs=self.min_epochs, eta=self.eta,
                                                 max_epochs=last_epoch, brackets=brackets)
        missing = [e for e in pruner.all_rungs() if epochs is not None and e not in epochs]
        if missing:
            raise UserError(f"rungs at epochs {', '.join(map(str, missing))} are not among the table's epochs "
                            f"{', '.join(map(str, epochs))}; choose --min-epochs/--eta whose rungs "
                            f"min_epochs * eta^k are recorded")
        return pruner

    def record(self, max_epochs: int, curve_epochs=None) -> dict:
        """The settings as stored with the study (its run record's ``fidelity``)."""
        out = {"early_stopping": self.early_stopping, "min_epochs": self.min_epochs, "eta": self.eta,
               "rung_metric": list(self.rung_metric), "budget_epochs": self.budget_epochs, "max_epochs": int(max_epochs)}
        if curve_epochs is not None:
            out["curve_epochs"] = list(curve_epochs)
        return out

    @classmethod
    def from_record(cls, stored: dict | None) -> "Fidelity | None":
        """The settings a study's run record holds (what spawned workers read), or None."""
        if not isinstance(stored, dict) or stored.get("early_stopping", "none") == "none":
            return None
        return cls(stored["early_stopping"], int(stored["min_epochs"]), int(stored["eta"]),
                   tuple(stored["rung_metric"]), stored.get("budget_epochs"))


class RungMonitor:
    """What a training consults at each epoch of ``epochs`` (this trial's rungs): the pruner's
    verdict on its curve point there, the rung metric's values stored with the trial."""

    def __init__(self, pruner, trial, rung_metric):
        self.pruner, self.trial, self.rung_metric = pruner, trial, tuple(rung_metric)
        self.epochs = tuple(pruner.rungs(trial.number))

    def __call__(self, epoch: int, point: dict) -> bool:
        vector = [_finite_or_nan(point.get(m)) for m in self.rung_metric]
        return self.pruner.report(self.trial, int(epoch), vector)


def _finite_or_nan(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan
