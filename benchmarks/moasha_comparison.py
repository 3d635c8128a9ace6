"""calnas's multi-objective ASHA against Syne Tune's MOASHA on one curve table, at equal simulated time.

Setup: syne-tune goes into its own environment, never the project's ``.venv`` (it could move
pinned packages); calnas's table path needs no torch::

    python3 -m venv .venv-bench && .venv-bench/bin/pip install -q -e . syne-tune==0.16.0

Run::

    nice -n 10 .venv-bench/bin/python benchmarks/moasha_comparison.py --table digits-tss-curves --seeds 10 --out runs/moasha

The problem, shared by both methods (nothing else is set; each method's defaults otherwise):

* the TSS cell, 6 edges of 5 operations; an architecture is looked up as its table row (its own,
  or its isomorphism class's: ``CurveTable.held_index``, which reads ``tss_meta()["iso"]``);
* at a rung, the seed-mean validation accuracy and NLL at that epoch (calnas's default rung
  metric, ``calnas.simulation.DEFAULT_RUNG_METRIC``; MOASHA minimises, so it gets ``1 - val_acc``);
  a training costs the seed-mean cumulative ``cpu_seconds`` to each epoch, as in calnas's simulation;
* 4 asynchronous workers, reduction factor 2, grace period / min epochs 1, max epochs 16;
* the simulated wall clock: calnas runs ``--budget-epochs`` training epochs (default 4,800, the
  epochs of 300 full trainings, as ``benchmarks/early_stopping.py compute``); MOASHA runs until
  the simulated time calnas's run ended at (per seed), and both are scored at ``--fractions`` of it.

calnas: ``calnas.api.search(table, "acc,ece", budget=100000, searcher="guided", seed=s,
early_stopping="asha", eta=2, simulated_workers=4, budget_epochs=N)``.

MOASHA: ``syne_tune.optimizer.schedulers.multiobjective.moasha.MOASHA`` (its defaults: random
configurations, non-dominated-sort priority, one bracket; ``random_seed=s`` and numpy's global
generator seeded with ``s``) driven by ``syne_tune.Tuner`` on a ``SimulatorBackend`` with
``SimulatorCallback``. The backend is a user backend over the same table (Syne Tune's own
``UserBlackboxBackend`` lives in ``syne_tune.blackbox_repository``, which imports
``huggingface_hub``; the lookup here is the same ``_run_job_and_collect_results`` override).
Three simulator settings are changed so the clock is the table's alone, as calnas's: the
simulator's delays are 0 (default 0.05 s per start/result/stop, against trainings of 0.3-2 s),
real time spent in the tuner loop is not added to the simulated clock (Syne Tune adds it by
default, which makes a run depend on the machine), and the tuner's simulated sleep (default 5 s)
is ``--tick`` (default 1 ms): a worker freed by a stop waits at most one tick for its next
trial. MOASHA never pauses trials, so no checkpointing is involved. An architecture whose
class the table lacks (a partial table) is a failed trial at no cost; MOASHA draws
architectures, not classes, with repeats, so it may train a class twice (counted).

Two MOASHAs (``--variants``): ``shipped``, and ``rank-fixed``, whose priority is returned as
ranks, which is what syne-tune 0.16's ``Bracket.on_result`` reads (as shipped it gets the sorted
order and judges a trial by the number of the worst-ranked trial: :func:`rank_priority`).

Score, the same for both: the hypervolume of the final-epoch seed-mean (acc, pre_ECE_15) of the
distinct architectures trained to epoch 16 by time t, normalised and bounded as calnas's summary
(the table's per-objective best and worst over its candidates, reference point 1.1:
``evaluator.known_front()``, ``calnas.pareto``), as a ratio to the table's true front's. Printed:
median and interquartile range over seeds of each method's ratio and of the paired difference
(calnas - MOASHA) per time point, as a markdown table; ``--out`` gets ``moasha_comparison.csv``
(one row per seed and time point) and ``moasha_comparison.md``. The table's noise ceiling (the
ratio one training seed's true front reaches on another seed's values,
``calnas.noise_ceiling``) is printed too: differences well below ``1 - ceiling`` are within
training-seed noise.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

OBJECTIVES = "acc,ece"
MAX_WALLCLOCK_SLACK = 1e-9


# -- scoring ----------------------------------------------------------------------------------

class Scorer:
    """Hypervolume ratio of a set of table rows, scaled as calnas's summary scales a search."""

    def __init__(self, table):
        from calnas.api import prepare
        from calnas.evaluators import reference_point

        evaluator, self.spec = prepare(table, OBJECTIVES)
        self.front = evaluator.known_front()
        self.position = {int(i): p for p, i in enumerate(evaluator.candidates().indices)}
        self.reference = reference_point(self.front.points.shape[1])

    def ratio(self, indices) -> float:
        from calnas import pareto

        positions = sorted({self.position[int(i)] for i in indices})
        if not positions:
            return 0.0
        scaled = pareto.normalise(self.front.points[positions], self.front.lower, self.front.upper)
        return float(pareto.hypervolume(scaled[pareto.front_mask(scaled)], self.reference) / self.front.hypervolume)


def ratios_over_time(scorer: Scorer, finished: list[tuple[float, int]], times: list[float]) -> list[float]:
    """The ratio of the rows finished (trained to the last epoch) by each time."""
    return [scorer.ratio([i for t, i in finished if t <= time_point + MAX_WALLCLOCK_SLACK]) for time_point in times]


# -- calnas -----------------------------------------------------------------------------------

def run_calnas(table, seed: int, *, budget_epochs: int, workers: int, eta: int, searcher: str) -> dict:
    from calnas.api import search

    res = search(table, OBJECTIVES, budget=100000, searcher=searcher, seed=seed, early_stopping="asha", eta=eta,
                 simulated_workers=workers, budget_epochs=budget_epochs)
    sim = res.info["simulation"]
    trials = res.trials
    done = trials[trials["stopped"] == "completed"]
    return {"clock": float(sim["simulated_clock"]), "finished": list(zip(done["sim_end"].astype(float),
                                                                         done["index"].astype(int))),
            "trials": int(len(trials)), "epochs_trained": int(sim["epochs_trained"]),
            "train_seconds": float(sim["train_seconds"]), "rung_metric": list(sim["rung_metric"]),
            "ratio": res.hypervolume_ratio, "noise_ceiling": (res.info.get("noise_ceiling") or {}).get("median")}


# -- MOASHA -----------------------------------------------------------------------------------

class CurveLookup:
    """What a simulated training of one architecture reports: rung metrics and cumulative seconds
    at every recorded epoch (seed means, as calnas's simulation reads them)."""

    def __init__(self, table, rung_metric):
        from calnas.curve_table import load_curves

        self.curves = load_curves(table)
        self.epochs = self.curves.epochs
        self.rung_metric = tuple(rung_metric)
        self.seconds = {e: self.curves.column_at("cpu_seconds", e) for e in self.epochs}
        self.values = {(m, e): self.curves.column_at(m, e) for m in self.rung_metric for e in self.epochs}
        self._row: dict[str, int | None] = {}

    def row(self, arch: str) -> int | None:
        from calnas.errors import UserError

        if arch not in self._row:
            try:
                self._row[arch] = self.curves.held_index(arch)
            except UserError:
                self._row[arch] = None
        return self._row[arch]

    def results(self, row: int) -> list[dict]:
        out = []
        for e in self.epochs:
            result = {"epoch": int(e), "elapsed_time": float(self.seconds[e].loc[row]), "row": int(row)}
            for m in self.rung_metric:
                value = float(self.values[(m, e)].loc[row])
                result[metric_name(m)] = 1.0 - value if m in MAXIMISED else value
            out.append(result)
        return out


MAXIMISED = {"val_acc", "acc", "train_acc"}


def metric_name(m: str) -> str:
    return {"val_acc": "val_error", "acc": "error", "train_acc": "train_error"}.get(m, m)


def rank_priority():
    """MOASHA's default priority (non-dominated sort, epsilon-net within a front) returned as each
    vector's rank, which is what ``syne_tune.optimizer.schedulers.asha.Bracket.on_result`` reads:
    0.16's ``NonDominatedPriority`` returns the sorted order (item numbers), so the bracket
    compares the number of the worst-ranked item, not the new trial's rank, with ``1 / eta``
    (a trial with the best vector at a rung can be stopped; see the README section)."""
    from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import NonDominatedPriority

    class RankPriority(NonDominatedPriority):
        def priority_unsafe(self, objectives):
            order = super().priority_unsafe(objectives)
            ranks = np.empty(len(order), dtype=int)
            ranks[order] = np.arange(len(order))
            return ranks

    return RankPriority()


def run_moasha(lookup: CurveLookup, seed: int, *, until: float, workers: int, eta: int, tick: float,
               variant: str = "shipped") -> dict:
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_backend import SimulatorBackend, SimulatorConfig
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.backend.trial_status import Status
    from syne_tune.config_space import choice
    from syne_tune.constants import ST_TUNER_TIME
    from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA

    from calnas.spaces import TSS

    class TableBackend(SimulatorBackend):
        """A simulator backend whose "training script" is a lookup in the curve table."""

        not_held = 0

        def _advance_by_outside_time(self):  # the simulated clock is the table's seconds alone
            pass

        def _run_job_and_collect_results(self, trial_id, config=None):
            config = self._trial_dict[trial_id].config if config is None else config
            row = lookup.row(TSS.from_params({k: config[k] for k in TSS.param_choices()}))
            if row is None:
                TableBackend.not_held += 1
                return Status.failed, []
            return Status.completed, lookup.results(row)

    class Recorder(SimulatorCallback):
        def __init__(self):
            super().__init__()
            self.finished, self.epochs, self.started = [], 0, set()

        def on_trial_result(self, trial, status, result, decision):
            # not stored as a results frame: only what the score needs
            self.started.add(trial.trial_id)
            self.epochs = self.epochs + result["epoch"] - self._last.get(trial.trial_id, 0)
            self._last[trial.trial_id] = result["epoch"]
            if result["epoch"] >= lookup.epochs[-1]:
                self.finished.append((float(result[ST_TUNER_TIME]), int(result["row"])))

        def on_tuning_start(self, tuner):
            super().on_tuning_start(tuner)
            self._last = {}

        def on_tuning_end(self):  # nothing to write
            self._tuner.stop_criterion = self._backup_stop_criterion
            self._tuner = None

    np.random.seed(seed)
    config_space = {name: choice(list(choices)) for name, choices in TSS.param_choices().items()}
    metrics = [metric_name(m) for m in lookup.rung_metric]
    priority = None if variant == "shipped" else rank_priority()
    scheduler = MOASHA(config_space, metrics=metrics, do_minimize=True, time_attr="epoch", multiobjective_priority=priority,
                       max_t=int(lookup.epochs[-1]), grace_period=1, reduction_factor=eta, random_seed=seed)
    TableBackend.not_held = 0
    backend = TableBackend(entry_point=__file__, elapsed_time_attr="elapsed_time",
                           simulator_config=SimulatorConfig(0.0, 0.0, 0.0, 0.0, 0.0), tuner_sleep_time=tick)
    recorder = Recorder()
    folder = tempfile.mkdtemp(prefix="calnas-moasha-")
    os.environ["SYNETUNE_FOLDER"] = folder
    try:
        tuner = Tuner(trial_backend=backend, scheduler=scheduler, n_workers=workers, sleep_time=0,
                      stop_criterion=StoppingCriterion(max_wallclock_time=until), callbacks=[recorder],
                      results_update_interval=1e9, print_update_interval=1e9, max_failures=10 ** 9,
                      save_tuner=False, tuner_name=f"moasha-{seed}", suffix_tuner_name=False)
        with contextlib.redirect_stdout(io.StringIO()):  # its progress tables and banners
            tuner.run()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    finished = [(t, r) for t, r in recorder.finished if t <= until + MAX_WALLCLOCK_SLACK]
    return {"finished": finished, "trials": len(backend.trial_ids), "not_held": TableBackend.not_held,
            "epochs_trained": int(recorder.epochs), "class_repeats": len(finished) - len({r for _, r in finished})}


# -- the comparison ----------------------------------------------------------------------------

VARIANTS = {"shipped": "MOASHA (syne-tune 0.16 as shipped)", "rank-fixed": "MOASHA, rank read as intended"}


def compare(table, seeds, *, budget_epochs=4800, workers=4, eta=2, searcher="guided", fractions=(0.125, 0.25, 0.5, 1.0),
            tick=0.001, variants=("shipped", "rank-fixed"), log=print) -> tuple[list[dict], dict]:
    """One row per seed and time point: calnas's ratio and each MOASHA variant's (see the module docstring)."""
    import optuna

    from calnas.simulation import DEFAULT_RUNG_METRIC

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("syne_tune").setLevel(logging.ERROR)
    scorer = Scorer(table)
    lookup = CurveLookup(table, DEFAULT_RUNG_METRIC)
    rows, facts = [], {"noise_ceiling": None}
    for seed in seeds:
        started = time.perf_counter()
        cal = run_calnas(table, seed, budget_epochs=budget_epochs, workers=workers, eta=eta, searcher=searcher)
        assert tuple(cal["rung_metric"]) == tuple(DEFAULT_RUNG_METRIC), cal["rung_metric"]
        cal["run_seconds"] = time.perf_counter() - started
        facts["noise_ceiling"] = cal["noise_ceiling"]
        times = [f * cal["clock"] for f in fractions]
        cal_r = ratios_over_time(scorer, cal["finished"], times)
        # the score is calnas's own: the final ratio equals the one its summary reports
        assert cal["ratio"] is None or abs(cal_r[-1] - cal["ratio"]) < 1e-9, (cal_r[-1], cal["ratio"])
        runs = {}
        for v in variants:
            started = time.perf_counter()
            runs[v] = run_moasha(lookup, seed, until=cal["clock"], workers=workers, eta=eta, tick=tick, variant=v)
            runs[v]["run_seconds"] = time.perf_counter() - started
            runs[v]["ratios"] = ratios_over_time(scorer, runs[v]["finished"], times)
        for k, (f, t) in enumerate(zip(fractions, times)):
            row = {"seed": seed, "fraction": f, "sim_seconds": round(t, 4), "calnas_ratio": cal_r[k],
                   "calnas_finished": _count(cal["finished"], t), "calnas_trials": cal["trials"],
                   "calnas_epochs": cal["epochs_trained"], "calnas_run_seconds": round(cal["run_seconds"], 2)}
            for v, run in runs.items():
                row.update({f"{v}_ratio": run["ratios"][k], f"difference_{v}": cal_r[k] - run["ratios"][k],
                            f"{v}_finished": _count(run["finished"], t), f"{v}_trials": run["trials"],
                            f"{v}_not_in_table": run["not_held"], f"{v}_epochs": run["epochs_trained"],
                            f"{v}_class_repeats": run["class_repeats"], f"{v}_run_seconds": round(run["run_seconds"], 2)})
            rows.append(row)
        log(json.dumps({"seed": seed, "clock": round(cal["clock"], 3), "calnas": [round(x, 5) for x in cal_r],
                        **{v: [round(x, 5) for x in run["ratios"]] for v, run in runs.items()},
                        "finished": {"calnas": len(cal["finished"]), **{v: len(r["finished"]) for v, r in runs.items()}},
                        "run_seconds": {"calnas": round(cal["run_seconds"], 1),
                                        **{v: round(r["run_seconds"], 1) for v, r in runs.items()}}}), flush=True)
    return rows, facts


def _count(finished, t) -> int:
    return sum(1 for e, _ in finished if e <= t + MAX_WALLCLOCK_SLACK)


def _q(values, digits=4) -> str:
    v = np.asarray(values, dtype=float)
    q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75])
    return f"{med:.{digits}f} [{q1:.{digits}f}, {q3:.{digits}f}]"


def markdown(rows: list[dict], facts: dict, fractions, variants) -> str:
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"{len(seeds)} seeds; median [interquartile range] over seeds of the hypervolume ratio (found / true "
             "front); difference = calnas - MOASHA, paired by seed."]
    for v in variants:
        lines += ["", f"calnas vs {VARIANTS[v]}:", "",
                  "| time (share of calnas's clock) | simulated s (median) | calnas | MOASHA | difference "
                  "| calnas ahead | finished, calnas / MOASHA (median) |", "|" + " --- |" * 7]
        for f in fractions:
            sel = [r for r in rows if r["fraction"] == f]
            ahead = sum(1 for r in sel if r[f"difference_{v}"] > 0)
            ties = sum(1 for r in sel if r[f"difference_{v}"] == 0)
            lines.append(f"| {f:g} | {np.median([r['sim_seconds'] for r in sel]):.1f} "
                         f"| {_q([r['calnas_ratio'] for r in sel])} | {_q([r[f'{v}_ratio'] for r in sel])} "
                         f"| {_q([r[f'difference_{v}'] for r in sel])} | {ahead}/{len(sel)}{f' ({ties} tied)' if ties else ''} "
                         f"| {np.median([r['calnas_finished'] for r in sel]):g} / "
                         f"{np.median([r[f'{v}_finished'] for r in sel]):g} |")
    last = [r for r in rows if r["fraction"] == fractions[-1]]
    med = lambda key: f"{np.median([r[key] for r in last]):g}"  # noqa: E731
    lines += ["", f"Per run (median over seeds): calnas started {med('calnas_trials')} trials and trained "
              f"{med('calnas_epochs')} epochs."]
    for v in variants:
        lines.append(f"{VARIANTS[v]}: started {med(f'{v}_trials')} trials ({med(f'{v}_not_in_table')} of them "
                     f"architectures whose class the table lacks, at no cost), trained {med(f'{v}_epochs')} epochs, "
                     f"repeated {med(f'{v}_class_repeats')} classes among its finished trainings.")
    if facts.get("noise_ceiling") is not None:
        lines.append(f"Noise ceiling of the table (median ratio one training seed's true front reaches on another "
                     f"seed's values): {facts['noise_ceiling']:.4f}.")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default="digits-tss-curves", help="an embedded curve table or a curve build CSV")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--budget-epochs", type=int, default=4800, help="calnas's training epochs; its clock is the time budget")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--eta", type=int, default=2)
    ap.add_argument("--searcher", default="guided", help="calnas's searcher")
    ap.add_argument("--fractions", default="0.125,0.25,0.5,1", help="time points, as shares of calnas's clock")
    ap.add_argument("--tick", type=float, default=0.001, help="Syne Tune tuner's simulated sleep (s)")
    ap.add_argument("--variants", default="shipped,rank-fixed", help=f"MOASHA variants: {', '.join(VARIANTS)}")
    ap.add_argument("--out", default=None, help="folder for moasha_comparison.csv and .md")
    args = ap.parse_args(argv)
    fractions = tuple(float(f) for f in args.fractions.split(","))
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        ap.error(f"unknown variant {', '.join(unknown) or '(none)'}; choose from {', '.join(VARIANTS)}")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    rows, facts = compare(args.table, seeds, budget_epochs=args.budget_epochs, workers=args.workers, eta=args.eta,
                          searcher=args.searcher, fractions=fractions, tick=args.tick, variants=variants)
    text = markdown(rows, facts, fractions, variants)
    print(text)
    if out is not None:
        with open(out / "moasha_comparison.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        (out / "moasha_comparison.md").write_text(f"table: {args.table}; command: {' '.join(sys.argv)}\n\n{text}\n")


if __name__ == "__main__":
    main()
