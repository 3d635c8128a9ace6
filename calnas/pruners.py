"""Multi-objective successive halving (ASHA, Hyperband) that lives in an Optuna study.

Optuna's pruners take one number per step (``trial.report``), which a multi-objective study
refuses (``NotImplementedError``; optuna/optuna#3450). This pruner keeps the vector instead, as a
user attribute of the trial, and decides from what the study holds, so it works with every
storage (memory, SQLite, journal, PostgreSQL), with several workers and machines, and across a
resume: a decision is a function of the vectors recorded at the rung when the trial asks.

Plain Optuna use::

    import optuna
    from calnas.pruners import MultiObjectiveSuccessiveHalving

    pruner = MultiObjectiveSuccessiveHalving(["maximize", "minimize"], min_epochs=1, eta=3, max_epochs=27)

    def objective(trial):
        model = ...
        for epoch in range(1, 28):
            train_one_epoch(model)
            if pruner.is_rung(epoch):
                if pruner.report(trial, epoch, (val_accuracy(model), val_ece(model))):
                    raise optuna.TrialPruned()        # or stop, and return what you have
        return test_accuracy(model), test_ece(model)

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(objective, n_trials=100)

The rule (asynchronous successive halving, Li et al. 2020, ranked as in MOASHA, Schmucker et al.
2021): rungs sit at ``min_epochs * eta**k`` below ``max_epochs``. A trial that reaches a rung
records its vector there and is ranked against every vector recorded at that rung by the
study's trials that did not fail (running, pruned or complete ones; a failed trial was either
killed, and is redone, or broken). The order: non-dominated sorting in the study's directions,
then, within a front, the larger exclusive hypervolume contribution (on the rung's vectors
scaled to [0, 1], reference point 1.1) or, with ``tie_break="crowding"``, the larger crowding
distance; then the earlier trial. The trial continues when its position is within the top
``max(1, n // eta)`` of the ``n`` vectors (Optuna's single-objective ASHA rule: the first ones
to arrive continue only if they lead). No trial waits for a rung to fill.

Hyperband (``brackets > 1``): bracket ``b`` starts its rungs at ``min_epochs * eta**b``, so it
prunes later; trials are dealt to brackets in a fixed cycle weighted as Hyperband's budgets
(more trials to the aggressive brackets), and ranked only within their own bracket.

Every decision is stored too (``calnas:decision:<epoch>``), so a study says afterwards which
rung each trial reached and why it stopped (:func:`trial_progress`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from calnas.errors import UserError

RUNG_ATTR = "calnas:rung:"          # + epoch: the vector recorded at that rung
DECISION_ATTR = "calnas:decision:"  # + epoch: "continue" or "prune"
BRACKET_ATTR = "calnas:bracket"
TIE_BREAKS = ("hypervolume", "crowding")
CONTINUE, PRUNE = "continue", "prune"


def rung_epochs(min_epochs: int, eta: int, max_epochs: int, bracket: int = 0) -> tuple[int, ...]:
    """The epochs where a trial of ``bracket`` is ranked: ``min_epochs * eta**(bracket + k)``
    below ``max_epochs`` (the last epoch is completion, not a rung)."""
    check_schedule(min_epochs, eta, max_epochs)
    out, k = [], bracket
    while True:
        epoch = min_epochs * eta ** k
        if epoch >= max_epochs:
            return tuple(out)
        out.append(int(epoch))
        k += 1


def check_schedule(min_epochs, eta, max_epochs) -> None:
    for name, value, low in (("min_epochs", min_epochs, 1), ("eta", eta, 2), ("max_epochs", max_epochs, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise UserError(f"{name} must be an integer of at least {low}, got {value!r}")
    if min_epochs >= max_epochs:
        raise UserError(f"min_epochs ({min_epochs}) must be below the schedule's {max_epochs} epochs: "
                        "no rung would fit before the end of training")


def max_brackets(min_epochs: int, eta: int, max_epochs: int) -> int:
    """How many Hyperband brackets the schedule holds (each with at least one rung)."""
    check_schedule(min_epochs, eta, max_epochs)
    return len(rung_epochs(min_epochs, eta, max_epochs))


class MultiObjectiveSuccessiveHalving:
    """Asynchronous multi-objective successive halving; ``brackets > 1`` makes it Hyperband."""

    def __init__(self, directions: Sequence[str], *, min_epochs: int = 1, eta: int = 3, max_epochs: int,
                 brackets: int = 1, tie_break: str = "hypervolume"):
        self.directions = [str(d).lower() for d in directions]
        if not self.directions or any(d not in ("maximize", "minimize") for d in self.directions):
            raise UserError(f"directions must be 'maximize' or 'minimize', got {list(directions)!r}")
        if tie_break not in TIE_BREAKS:
            raise UserError(f"unknown tie break {tie_break!r}; expected one of {', '.join(TIE_BREAKS)}")
        check_schedule(min_epochs, eta, max_epochs)
        most = max_brackets(min_epochs, eta, max_epochs)
        if isinstance(brackets, bool) or not isinstance(brackets, (int, np.integer)) or not 1 <= brackets <= most:
            raise UserError(f"brackets must be between 1 and {most} for rungs from {min_epochs} epochs at eta "
                            f"{eta} below {max_epochs}, got {brackets!r}")
        self.min_epochs, self.eta, self.max_epochs = int(min_epochs), int(eta), int(max_epochs)
        self.brackets = int(brackets)
        self.tie_break = tie_break
        self._cycle = _bracket_cycle([len(rung_epochs(self.min_epochs, self.eta, self.max_epochs, b))
                                      for b in range(self.brackets)], self.eta)

    # -- the schedule ------------------------------------------------------------------------

    def settings(self) -> dict:
        return {"min_epochs": self.min_epochs, "eta": self.eta, "max_epochs": self.max_epochs,
                "brackets": self.brackets, "tie_break": self.tie_break}

    def bracket_of(self, trial_number: int) -> int:
        return self._cycle[int(trial_number) % len(self._cycle)]

    def rungs(self, trial_number: int = 0) -> tuple[int, ...]:
        return rung_epochs(self.min_epochs, self.eta, self.max_epochs, self.bracket_of(trial_number))

    def all_rungs(self) -> tuple[int, ...]:
        return rung_epochs(self.min_epochs, self.eta, self.max_epochs)

    def is_rung(self, epoch: int, trial_number: int | None = None) -> bool:
        rungs = self.all_rungs() if trial_number is None else self.rungs(trial_number)
        return int(epoch) in rungs

    # -- reporting and deciding --------------------------------------------------------------

    def report(self, trial, epoch: int, values) -> bool:
        """Record ``values`` for ``trial`` at ``epoch`` and return True when it should stop there.
        At an epoch that is not one of the trial's rungs nothing is recorded and it continues."""
        if not self.is_rung(epoch, trial.number):
            return False
        vector = _vector(values, len(self.directions))
        trial.set_user_attr(BRACKET_ATTR, self.bracket_of(trial.number))
        trial.set_user_attr(f"{RUNG_ATTR}{int(epoch)}", vector)
        decision = self.decide(trial.study, trial.number, int(epoch), vector)
        trial.set_user_attr(f"{DECISION_ATTR}{int(epoch)}", decision)
        return decision == PRUNE

    def decide(self, study, trial_number: int, epoch: int, vector) -> str:
        """CONTINUE or PRUNE for the trial's ``vector`` at ``epoch``, from the study's records."""
        import optuna

        bracket = self.bracket_of(trial_number)
        key = f"{RUNG_ATTR}{int(epoch)}"
        numbers, rows = [trial_number], [list(vector)]
        for other in study.get_trials(deepcopy=False):
            if other.number == trial_number or other.state == optuna.trial.TrialState.FAIL:
                continue
            recorded = other.user_attrs.get(key)
            if recorded is None or other.user_attrs.get(BRACKET_ATTR, self.bracket_of(other.number)) != bracket:
                continue
            numbers.append(other.number)
            rows.append(list(recorded))
        return CONTINUE if self.promotes(np.asarray(rows, dtype=float), numbers, 0) else PRUNE

    def promotes(self, vectors: np.ndarray, numbers: Sequence[int], position: int) -> bool:
        """Whether row ``position`` of ``vectors`` (user's directions) is within the top
        ``max(1, n // eta)`` of the rung's order (see the module docstring).

        The same answer as ranking every row with :func:`rung_order`, but only the front layer
        of ``position`` is tie-broken, and only when the cut falls inside it: a decision is then
        near-linear in the rung's size instead of quadratic (every ASHA decision reads the rung)."""
        scaled = _scaled(vectors, self.directions)
        from calnas.pareto import nondominated_ranks

        ranks = nondominated_ranks(scaled)
        keep = max(1, len(scaled) // self.eta)
        mine = ranks[position]
        ahead = int((ranks < mine).sum())
        layer = np.flatnonzero(ranks == mine)
        if ahead >= keep:
            return False
        if ahead + len(layer) <= keep:
            return True
        score = _layer_scores(scaled[layer], self.tie_break)
        order = sorted(range(len(layer)), key=lambda i: (-score[i], numbers[layer[i]]))
        return ahead + order.index(int(np.flatnonzero(layer == position)[0])) < keep


def rung_order(vectors: np.ndarray, directions: Sequence[str], numbers: Sequence[int],
               tie_break: str = "hypervolume") -> np.ndarray:
    """Row positions of ``vectors`` from best to worst: front rank, then the tie break (larger
    first), then the smaller trial number. Non-finite values rank last in their objective."""
    from calnas.pareto import nondominated_ranks

    scaled = _scaled(vectors, directions)
    ranks = nondominated_ranks(scaled)
    score = np.zeros(len(scaled))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        score[members] = _layer_scores(scaled[members], tie_break)
    return np.array(sorted(range(len(scaled)), key=lambda i: (ranks[i], -score[i], numbers[i])))


def _scaled(vectors, directions: Sequence[str]) -> np.ndarray:
    """Minimisation points scaled to [0, 1] per objective over the rung; a non-finite value sits
    at 1.05, behind every finite one and inside the tie break's reference point (1.1)."""
    from calnas.pareto import as_minimisation

    pts = as_minimisation(np.asarray(vectors, dtype=float), directions)
    pts = np.where(np.isfinite(pts), pts, np.inf)
    ok = np.isfinite(pts)
    # inf where an objective has no finite value at all (replaced below), without nanmin's warning
    lower, upper = np.where(ok, pts, np.inf).min(axis=0), np.where(ok, pts, -np.inf).max(axis=0)
    lower, upper = np.where(np.isfinite(lower), lower, 0.0), np.where(np.isfinite(upper), upper, 1.0)
    span = np.where(upper > lower, upper - lower, 1.0)
    return np.where(np.isfinite(pts), (pts - lower) / span, 1.05)


def _layer_scores(front: np.ndarray, tie_break: str) -> np.ndarray:
    from calnas.pareto import crowding_distance

    return crowding_distance(front) if tie_break == "crowding" else _contributions(front)


def _contributions(front: np.ndarray) -> np.ndarray:
    """Exclusive hypervolume contribution of each point of a mutually non-dominated set."""
    from calnas.pareto import hypervolume

    reference = np.full(front.shape[1], 1.1)
    if len(front) == 1:
        return np.array([hypervolume(front, reference)])
    if front.shape[1] == 2:
        return _contributions_2d(front, reference)
    total = hypervolume(front, reference)
    out = np.empty(len(front))
    for i in range(len(front)):
        out[i] = total - hypervolume(np.delete(front, i, axis=0), reference)
    return out


def _contributions_2d(front: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Two objectives: sorted by the first, a non-dominated set's second falls, and each point
    alone covers the rectangle up to its neighbours (the reference at the ends): O(n log n)."""
    order = np.lexsort((front[:, 1], front[:, 0]))
    x, y = front[order, 0], front[order, 1]
    right = np.append(x[1:], reference[0])
    above = np.insert(y[:-1], 0, reference[1])
    out = np.empty(len(front))
    out[order] = np.maximum(right - x, 0.0) * np.maximum(above - y, 0.0)
    return out


def _vector(values, k: int) -> list[float]:
    try:
        vector = [float(v) for v in (values if isinstance(values, (list, tuple, np.ndarray)) else [values])]
    except (TypeError, ValueError):
        raise UserError(f"a rung report needs {k} numbers, got {values!r}") from None
    if len(vector) != k:
        raise UserError(f"a rung report needs {k} numbers (one per direction), got {len(vector)}")
    return vector


def _bracket_cycle(rung_counts: Sequence[int], eta: int) -> tuple[int, ...]:
    """Brackets in a fixed cycle, each as often as Hyperband's count of first-rung trials for a
    bracket of ``s`` rungs among ``B``: ``ceil(B / (s + 1) * eta**s)``; bracket 0 (the most
    rungs, starting earliest) gets the most."""
    brackets = len(rung_counts)
    if brackets == 1:
        return (0,)
    weights = {b: math.ceil(brackets / (s + 1) * eta ** s) for b, s in enumerate(rung_counts)}
    cycle, given = [], {b: 0 for b in weights}
    for _ in range(sum(weights.values())):  # interleaved, so any prefix is close to the weights
        b = min(weights, key=lambda x: ((given[x] + 1) / weights[x], x))
        given[b] += 1
        cycle.append(b)
    return tuple(cycle)


def trial_progress(trial, max_epochs: int | None = None) -> dict:
    """What the pruner did to a trial (frozen or live), from its attributes: ``{"epochs": the
    epoch its training reached, "stopped": "pruned" | "completed" | None (still running, failed,
    or never ranked), "rungs": {epoch: decision}}``. A complete trial reached ``max_epochs``."""
    import optuna

    rungs = {int(k[len(DECISION_ATTR):]): v for k, v in trial.user_attrs.items() if k.startswith(DECISION_ATTR)}
    pruned = [e for e, d in rungs.items() if d == PRUNE]
    if pruned:
        epochs, stopped = min(pruned), "pruned"
    elif trial.state == optuna.trial.TrialState.COMPLETE:
        epochs, stopped = max_epochs, "completed"
    else:
        epochs, stopped = (max(rungs) if rungs else None), None
    return {"epochs": epochs, "stopped": stopped, "rungs": dict(sorted(rungs.items()))}
