"""`calnas search`: multi-objective architecture search over a table, with the Pareto front."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from calnas.commands import _training
from calnas.commands._common import flag_names, quiet_optuna
from calnas.commands._search_options import (DEFAULTS, FIDELITY_KEYS, FLAGS, LIVE_DEFAULTS, _merge,  # noqa: F401 - names scripts use
                                             _read_config)
from calnas.commands._search_progress import _LiveProgress, _progress
from calnas.commands._search_report import report, result_folder  # noqa: F401 - show reports through these
from calnas.checks import MAX_WORKERS
from calnas.errors import UserError

HELP = """Search a table for architectures that are accurate and well calibrated; show the Pareto front.

The budget counts DISTINCT architectures evaluated (with --dedupe iso: isomorphism classes).
No searcher spends budget on an architecture already evaluated: a repeated proposal (or, with
--dedupe iso, an isomorphic twin) is answered from a cache at no cost, a proposal the table
lacks costs nothing, and after 3 such proposals in a row the next trial is a random unseen
architecture drawn with the run's seed. The same --seed gives the same trials and front.

Files in --out (default: a new folder runs/search-NNN): front.csv, trials.csv (evaluation
order), summary.json, pareto.png, hypervolume.png. --out is checked before the search runs, and a
folder another calnas run is writing is refused. Hypervolume is measured with every objective scaled to [0, 1]
by the table's best and worst values and the reference point at 1.1 (docs/search.md).

The search is an Optuna study. With --storage (sqlite:///s.db, journal:///s.log or
postgresql://user@host/db) it is kept: the same command again continues it to --budget (a
killed run loses nothing but the evaluations in flight, which are redone), --workers N runs N
processes on it, and `calnas show --storage URL --study-name NAME` rebuilds the files from it.

With --live every proposed architecture is trained and evaluated now (the path of `calnas table
build`, same training options); each evaluation is appended to a table file (--table-out, default
OUT/table.csv) that `calnas search --benchmark` can search later and that a resumed or later live
search reads before training anything. Constraints on params/FLOPs are checked before training.
Each trained architecture keeps its test split's reliability-diagram data in the study, and
reliability.png shows the diagrams (before and after temperature scaling) of the front members.
--recipes searches architecture x training recipe (the budget counts distinct pairs; front.csv
and trials.csv gain a recipe column; each recipe appends to its own table, OUT/table.RECIPE.csv).
"""


def search_cmd(
    objective: Optional[List[str]] = typer.Option(
        None, "--objective", "-o",
        help="Objectives, comma-separated (repeatable): acc, ece (= pre_ECE_15), any table column or schema "
             "name (post_ece_15, ece_em_50, cwce_15, mce_100, ksce, nll, brier, auroc, aurc, params, flops ...), "
             "hcs or hcs:beta=2; prefix max:/min: to override the direction. Default: acc,ece."),
    constraint: Optional[List[str]] = typer.Option(
        None, "--constraint", "-c",
        help="NAME OP VALUE with OP one of >=, <=, >, < (repeatable), e.g. \"acc>=0.9\"; feasible architectures rank first."),
    budget: Optional[int] = typer.Option(None, "--budget", "-n", help="Distinct architectures to evaluate (default 500)."),
    searcher: Optional[str] = typer.Option(
        None, "--searcher", "-s",
        help="auto (default, = guided), guided, local, evolution, random, tpe, nsga2, nsga3, qmc, gp (see docs/search.md)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0)."),
    benchmark: Optional[str] = typer.Option(
        None, "--benchmark", "-b", help="Benchmark name (see `calnas benchmarks`) or a CSV path; default: the embedded default."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder with published calibration CSVs (default: $CALNAS_DATA_DIR)."),
    dedupe: Optional[str] = typer.Option(None, "--dedupe", help="arch (default): distinct architectures; iso: distinct isomorphism classes."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: a new folder under runs/)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file whose keys are option names (objective, budget, ...); command-line options win."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    no_plot: bool = typer.Option(False, "--no-plot", help="Write no figures (pareto.png, hypervolume.png, reliability.png); an earlier run's copies in --out are removed."),
    storage: Optional[str] = typer.Option(
        None, "--storage",
        help="Where the Optuna study lives: memory (default), sqlite:///FILE.db, journal:///FILE.log (or a path "
             "ending in .log), postgresql://USER:PASSWORD@HOST/DB. A stored study continues where it stopped."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="Study name in --storage (default: calnas)."),
    workers: Optional[int] = typer.Option(
        None, "--workers", help=f"Processes sharing the study, 1 to {MAX_WORKERS} (default 1; more than 1 needs "
                                "--storage). Several machines running the same command on one PostgreSQL share it too."),
    live: bool = typer.Option(False, "--live", help="Train and evaluate each proposed architecture now (docs/live.md)."),
    dataset: Optional[str] = _training.dataset_option(),
    data_root: Optional[Path] = _training.data_root_option(),
    space: Optional[str] = typer.Option(None, "--space", help="Live: tss (default) | sss."),
    epochs: Optional[int] = _training.epochs_option(),
    channels: Optional[int] = _training.channels_option(),
    cells: Optional[int] = _training.cells_option(),
    recipe: Optional[str] = _training.recipe_option(),
    recipes: Optional[str] = typer.Option(
        None, "--recipes", help="Live: search architecture x training recipe, e.g. ce,mixup,focal,label-smoothing,margin "
                                "(a NAME tries its small grid, NAME:PARAM itself; docs/live.md, Joint search)."),
    optimizer: Optional[str] = _training.optimizer_option(),
    lr: Optional[float] = _training.lr_option(),
    train_seed: Optional[int] = typer.Option(
        None, "--train-seed", min=0, help="Live: seed of the data split and of every training (default 0; --seed is the search's)."),
    device: Optional[str] = typer.Option(None, "--device", help="Live: auto (default) | cpu | cuda."),
    devices: Optional[str] = typer.Option(
        None, "--devices", help="Live: GPUs for the workers, e.g. 0,1,2,3 (worker i trains on the i-th, round robin)."),
    table_out: Optional[Path] = typer.Option(
        None, "--table-out", help="Live: table file every evaluation is appended to (default: the resumed study's "
                                  "table, else OUT/table.csv)."),
    cache: Optional[List[Path]] = typer.Option(
        None, "--cache", help="Live: a table calnas built with the same protocol (repeatable); its architectures "
                              "(and their isomorphic twins) are answered without training."),
    early_stopping: Optional[str] = typer.Option(
        None, "--early-stopping", help="none (default) | asha | hyperband: stop trainings at rungs min-epochs * eta^k "
                                       "unless in the top 1/eta of the vectors ranked there (a curve table: simulated)."),
    min_epochs: Optional[int] = typer.Option(None, "--min-epochs", help="Epoch of the first rung (default 1)."),
    eta: Optional[int] = typer.Option(None, "--eta", help="Reduction factor: rungs every eta-fold epochs, 1/eta continue (default 2)."),
    rung_metric: Optional[str] = typer.Option(
        None, "--rung-metric", help="What is ranked at a rung: curve columns, comma-separated (default val_acc,val_NLL: "
                                    "validation accuracy and NLL, no test labels)."),
    budget_epochs: Optional[int] = typer.Option(
        None, "--budget-epochs", help="Stop when the training epochs summed over all trials reach N (beside --budget)."),
    simulated_workers: Optional[int] = typer.Option(
        None, "--simulated-workers", help="Replay a curve table as if N asynchronous workers trained it (simulated clock, "
                                          "the table's measured training seconds)."),
) -> None:
    given = {"objective": objective or None, "constraint": constraint or None, "budget": budget, "searcher": searcher,
             "seed": seed, "benchmark": benchmark, "data-dir": data_dir, "dedupe": dedupe, "out": out,
             "json": as_json or None, "no-plot": no_plot or None, "storage": storage, "study-name": study_name,
             "workers": workers, "live": live or None, "dataset": dataset, "data-root": data_root, "space": space,
             "epochs": epochs, "channels": channels, "cells": cells, "recipe": recipe, "optimizer": optimizer,
             "recipes": recipes,
             "lr": lr, "train-seed": train_seed, "device": device,
             "devices": devices, "table-out": table_out, "cache": cache or None,
             "early-stopping": early_stopping, "min-epochs": min_epochs, "eta": eta, "rung-metric": rung_metric,
             "budget-epochs": budget_epochs, "simulated-workers": simulated_workers}  # left out: the config's value
    config_values = _read_config(config) if config else {}
    options = _merge(given, config_values)
    with result_folder(options["out"]) as out_dir:  # checked and claimed before the search runs
        live_config = _live_config(options, given, config_values, out_dir)

        from calnas.api import prepare, run_search, simulate_search, with_noise_ceiling

        quiet_optuna()
        stopping = str(options["early-stopping"] or "none").lower()
        if stopping == "none":
            stray = [k for k in ("min-epochs", "eta", "rung-metric") if options[k] is not None]
            if stray:
                raise UserError(f"--{stray[0]} applies with --early-stopping asha or hyperband")
        fidelity = None
        if live_config is not None and options["simulated-workers"] is not None:
            raise UserError("--simulated-workers replays a curve table (--benchmark); a live search trains on --workers")
        if live_config is not None and (stopping != "none" or options["budget-epochs"] is not None):
            from calnas.api import DEFAULTS as LIBRARY_DEFAULTS
            from calnas.fidelity import Fidelity

            given_or_default = {k: LIBRARY_DEFAULTS[k.replace("-", "_")] if options[k] is None else options[k]
                                for k in ("min-epochs", "eta")}
            fidelity = Fidelity(stopping, given_or_default["min-epochs"], given_or_default["eta"],
                                options["rung-metric"], options["budget-epochs"])
        elif stopping != "none" or options["budget-epochs"] is not None or options["simulated-workers"] is not None:
            fidelity = {k: options[k] for k in ("min-epochs", "eta") if options[k] is not None}
            with flag_names(FLAGS):
                result = simulate_search(
                    options["benchmark"], options["objective"], options["budget"], options["searcher"],
                    options["seed"], options["constraint"], options["dedupe"], data_dir=options["data-dir"],
                    storage=options["storage"], study_name=options["study-name"], early_stopping=stopping,
                    rung_metric=options["rung-metric"], budget_epochs=options["budget-epochs"],
                    simulated_workers=options["simulated-workers"],
                    **{k.replace("-", "_"): v for k, v in fidelity.items()})
            report(result, out_dir, as_json=options["json"], plot=not options["no-plot"])
            return
        with flag_names(FLAGS), _progress(enabled=not options["json"] and live_config is None) as advance:
            evaluator, spec = prepare(options["benchmark"], options["objective"], options["constraint"],
                                      options["dedupe"], data_dir=options["data-dir"], live=live_config,
                                      workers=options["workers"])
            watch = (_LiveProgress(spec, options["workers"], enabled=not options["json"])
                     if live_config is not None else None)
            if fidelity is not None:
                fidelity = fidelity.checked(evaluator.max_epochs)  # rungs that do not fit: before any training
            result = run_search(evaluator, spec, budget=options["budget"], searcher=options["searcher"],
                                seed=options["seed"], storage=options["storage"], study_name=options["study-name"],
                                workers=options["workers"], progress=advance, report=watch, fidelity=fidelity)
            if live_config is None:
                from calnas.tables import default_benchmark

                result = with_noise_ceiling(result, options["benchmark"] or default_benchmark(), spec)
        report(result, out_dir, as_json=options["json"], plot=not options["no-plot"])


def _live_config(options: dict, given: dict, config: dict, out_dir: Path):
    """The LiveConfig of a --live search (None for a table search); live-only options without
    --live are a mistake worth one line."""
    if not options["live"]:
        stray = [k for k in LIVE_DEFAULTS if given.get(k) is not None or config.get(k) is not None]
        if stray:
            raise UserError(f"--{stray[0]} applies to live searches; add --live (or leave it out)")
        return None
    if options["benchmark"] is not None:
        raise UserError("--benchmark and --live exclude each other; give tables that answer without training as --cache")
    from calnas.live.config import LiveConfig
    from calnas.live.evaluator import TABLE_NAME

    cache = options["cache"]
    return LiveConfig(dataset=options["dataset"], space=options["space"], data_root=options["data-root"],
                      epochs=options["epochs"], channels=options["channels"], cells=options["cells"],
                      recipe=options["recipe"], optimizer=options["optimizer"], lr=options["lr"],
                      recipes=options["recipes"],
                      seed=options["train-seed"], device=options["device"], devices=options["devices"],
                      table_out=options["table-out"], cache=[cache] if isinstance(cache, (str, Path)) else cache,
                      table_default=out_dir / TABLE_NAME)



def register(app: typer.Typer) -> None:
    app.command("search", help=HELP)(search_cmd)

