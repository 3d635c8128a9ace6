"""`calnas search`: multi-objective architecture search over a table, with the Pareto front."""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import List, Optional

import typer

from calnas.commands import _training
from calnas.commands._common import console, err_console, flag_names, fmt, print_json, quiet_optuna
from calnas.errors import UserError

# dedupe None: arch for a table, iso for a live TSS search (the library decides).
DEFAULTS = {"objective": ["acc,ece"], "constraint": [], "budget": 500, "searcher": "auto", "seed": 0,
            "benchmark": None, "data-dir": None, "dedupe": None, "out": None, "json": False, "no-plot": False,
            "storage": None, "study-name": None, "workers": 1}
# Live search: --live and the training options (shared with evaluate --live and table build).
LIVE_DEFAULTS = {**_training.DEFAULTS, "space": "tss", "train-seed": 0, "device": "auto", "devices": None,
                 "table-out": None, "cache": [], "recipes": None}
DEFAULTS.update({"live": False, **LIVE_DEFAULTS})
_INT_KEYS = ("budget", "seed", "workers", "epochs", "channels", "cells", "train-seed")
_NUMBER_KEYS = ("lr",)
_BOOL_KEYS = ("json", "no-plot", "live")
_STR_KEYS = ("searcher", "benchmark", "data-dir", "dedupe", "out", "storage", "study-name", "dataset", "data-root",
             "space", "device", "devices", "table-out", "recipe", "optimizer", "recipes")
# Library parameter names -> the flags that set them, for error messages.
FLAGS = {"budget": "--budget", "seed": "--seed", "workers": "--workers", "study_name": "--study-name",
         "storage": "--storage", "dedupe": "--dedupe", "objectives": "--objective", "constraints": "--constraint",
         "data_dir": "--data-dir"}
# Config keys that name the same option.
_CONFIG_ALIASES = {"objectives": "objective", "constraints": "constraint"}

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
        None, "--workers", help="Processes sharing the study (default 1; more than 1 needs --storage). Several "
                                "machines running the same command on one PostgreSQL share it too."),
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
) -> None:
    given = {"objective": objective or None, "constraint": constraint or None, "budget": budget, "searcher": searcher,
             "seed": seed, "benchmark": benchmark, "data-dir": data_dir, "dedupe": dedupe, "out": out,
             "json": as_json or None, "no-plot": no_plot or None, "storage": storage, "study-name": study_name,
             "workers": workers, "live": live or None, "dataset": dataset, "data-root": data_root, "space": space,
             "epochs": epochs, "channels": channels, "cells": cells, "recipe": recipe, "optimizer": optimizer,
             "recipes": recipes,
             "lr": lr, "train-seed": train_seed, "device": device,
             "devices": devices, "table-out": table_out, "cache": cache or None}  # left out: the config's value
    config_values = _read_config(config) if config else {}
    options = _merge(given, config_values)
    with result_folder(options["out"]) as out_dir:  # checked and claimed before the search runs
        live_config = _live_config(options, given, config_values, out_dir)

        from calnas.searching import search

        quiet_optuna()
        with flag_names(FLAGS), _progress(enabled=not options["json"] and live_config is None) as advance:
            watch = _LiveProgress(options, enabled=not options["json"]) if live_config is not None else None
            result = search(options["benchmark"], options["objective"], budget=options["budget"],
                            searcher=options["searcher"], seed=options["seed"], constraints=options["constraint"],
                            dedupe=options["dedupe"], data_dir=options["data-dir"], progress=advance,
                            storage=options["storage"], study_name=options["study-name"],
                            workers=options["workers"], live=live_config, report=watch)
        report(result, out_dir, as_json=options["json"], plot=not options["no-plot"])


@contextmanager
def result_folder(out):
    """The result folder, checked (a folder calnas can write) and claimed against other calnas
    runs before any work: ``out``, or without it a new runs/search-NNN."""
    from calnas.files import claim_folder

    with ExitStack() as stack:
        if out is not None:
            yield stack.enter_context(claim_folder(out))
            return
        n = 1
        while True:
            try:
                folder = stack.enter_context(claim_folder(Path("runs") / f"search-{n:03d}", new=True))
            except FileExistsError:
                n += 1
                continue
            yield folder
            return


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
    from calnas.live.search import TABLE_NAME, LiveConfig

    cache = options["cache"]
    return LiveConfig(dataset=options["dataset"], space=options["space"], data_root=options["data-root"],
                      epochs=options["epochs"], channels=options["channels"], cells=options["cells"],
                      recipe=options["recipe"], optimizer=options["optimizer"], lr=options["lr"],
                      recipes=options["recipes"],
                      seed=options["train-seed"], device=options["device"], devices=options["devices"],
                      table_out=options["table-out"], cache=[cache] if isinstance(cache, (str, Path)) else cache,
                      table_default=out_dir / TABLE_NAME)


def report(result, out, *, as_json: bool, plot: bool) -> None:
    """Write the result files and print the front (or the JSON summary)."""
    out_dir = Path(out) if out is not None else _new_run_dir()
    paths = result.save(out_dir, plot=plot)  # also removes an earlier run's figures it does not draw
    if as_json:
        print_json({**result.summary(), "out": str(out_dir), "files": {k: str(v) for k, v in paths.items()}})
        return
    console.print(_front_table(result))
    console.print(_summary_line(result, out_dir))


def _merge(given: dict, config: dict) -> dict:
    options = dict(DEFAULTS)
    options.update({k: v for k, v in config.items() if v is not None})
    options.update({k: v for k, v in given.items() if v is not None})
    return options


def _read_config(path: Path) -> dict:
    import yaml

    from calnas.files import check_input

    check_input(path, "config file", "config")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"config file {str(path)!r} is not UTF-8 text; expected YAML like 'budget: 500'") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # ValueError: e.g. a date like 2024-13-01
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"cannot read {str(path)!r} as YAML ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config {str(path)!r} must be a mapping of option names to values, e.g. 'budget: 500'")
    config = {}
    for raw_key, value in data.items():
        key = _CONFIG_ALIASES.get(str(raw_key).replace("_", "-"), str(raw_key).replace("_", "-"))
        if key not in DEFAULTS:
            raise UserError(f"config {str(path)!r}: unknown key {raw_key!r}; expected one of {', '.join(DEFAULTS)}")
        if "\x00" in str(value):  # no file name or option may hold a NUL character
            raise UserError(f"config {str(path)!r}: {raw_key} holds a NUL character")
        if key in ("objective", "constraint", "cache"):
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UserError(f"config {str(path)!r}: {raw_key} must be a string or a list of strings")
        elif key in _INT_KEYS and (isinstance(value, bool) or not isinstance(value, int)):
            raise UserError(f"config {str(path)!r}: {raw_key} must be an integer, got {value!r}")
        elif key in _NUMBER_KEYS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UserError(f"config {str(path)!r}: {raw_key} must be a number, got {value!r}")
        elif key in _BOOL_KEYS and not isinstance(value, bool):
            raise UserError(f"config {str(path)!r}: {raw_key} must be true or false")
        elif key == "devices" and isinstance(value, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise UserError(f"config {str(path)!r}: devices must be GPU numbers like [0, 1] or '0,1'")
            value = ",".join(str(v) for v in value)
        elif key in _STR_KEYS and value is not None and not isinstance(value, str):
            raise UserError(f"config {str(path)!r}: {raw_key} must be a string, got {value!r} (quote it in YAML)")
        config[key] = value
    return config


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

    def __init__(self, options: dict, enabled: bool):
        from calnas import objectives as objectives_module
        from calnas.live.search import live_columns

        self.enabled = enabled
        self.terminal = err_console.is_terminal
        # The search parses the same objectives the same way; here only for directions and names.
        self.spec = objectives_module.parse(options["objective"], live_columns("live training"), options["constraint"])
        self.workers = max(1, int(options["workers"] or 1))
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
                self.violations.append(sum(max(0.0, c) for c in entry.constraints))
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
        mask = pareto.front_mask(points, violation)
        if violation is not None:
            mask &= violation <= 0
        return int(mask.sum())

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


def _new_run_dir(root: Path = Path("runs")) -> Path:
    n = 1
    while (root / f"search-{n:03d}").exists():
        n += 1
    return root / f"search-{n:03d}"


def _front_table(result):
    from rich.table import Table as RichTable

    objectives = result.info["objectives"]
    table = RichTable(title=f"Pareto front: {len(result.front)} of {result.evaluations} evaluated architectures")
    table.add_column("rank", justify="right")
    table.add_column("arch", overflow="fold")
    table.add_column("index", justify="right")
    joint = "recipe" in result.front.columns  # an architecture x recipe search
    if joint:
        table.add_column("recipe")
    chosen = "calibrator" in result.front.columns  # best_post_ece: each member's calibrator
    for obj in objectives:
        arrow = "↑" if obj["direction"] == "maximize" else "↓"
        header = obj["name"] if not obj["column"] or obj["column"] == obj["name"] else f"{obj['name']}\n{obj['column']}"
        table.add_column(f"{header} {arrow}", justify="right")
    if chosen:
        table.add_column("calibrator")
    constraints = result.info["constraints"]
    if constraints:
        table.add_column("constraints")
    for row in result.front.itertuples(index=False):
        record = row._asdict()
        cells = [str(record["rank"]), record["arch"], str(record["index"])] + ([record["recipe"]] if joint else [])
        cells += [fmt(float(getattr(row, _attr(result.front, o["name"])))) for o in objectives]
        cells += [record["calibrator"]] if chosen else []
        if constraints:
            cells.append("met" if record["feasible"] else "[red]violated[/red]")
        table.add_row(*cells)
    return table


def _attr(frame, name: str) -> str:
    # itertuples renames columns that are not identifiers (hcs:beta=2) to _<position>.
    position = list(frame.columns).index(name)
    return name if name.isidentifier() else f"_{position}"


def _summary_line(result, out_dir: Path) -> str:
    info = result.info
    parts = [f"{result.evaluations} evaluations ({info['searcher']}, seed {info['seed']}, dedupe {info['dedupe']})"]
    if result.exhausted:
        unit = "isomorphism class" if info["dedupe"] == "iso" else "architecture"
        parts.append(f"every {unit} of {info['benchmark']} evaluated before the budget of {info['budget']}")
    parts.append(f"hypervolume {result.hypervolume:.4f}")
    if result.hypervolume_ratio is not None:
        scope = "true front" if info["covers_space"] else "front of the table"
        parts.append(f"{result.hypervolume_ratio:.4f} of the {scope} ({result.true_hypervolume:.4f}); "
                     f"{result.true_front_found} of its {len(result.true_front)} members found")
    if info["constraints"] and not result.front["feasible"].any():
        parts.append("[red]no feasible architecture found[/red]")
    timing = info.get("evaluation_time")
    if timing:
        each = f" ({timing['seconds_per_training']:.2f}s each)" if timing["seconds_per_training"] is not None else ""
        parts.append(f"trained {timing['trained']} in {timing['seconds']:.1f}s{each}, {timing['cached']} from tables")
    check = info.get("pre_training_check")
    if check:
        parts.append(f"{', '.join(check['constraints'])} excluded {check['excluded']} architectures before training "
                     f"({info['proposals'].get('infeasible_untrained', 0)} such proposals answered untrained)")
    if info.get("recipe_tables"):
        folder = Path(next(iter(info["recipe_tables"].values()))).parent
        parts.append(f"{len(info['recipe_tables'])} recipe tables in {folder}")
    elif info.get("table_out"):
        parts.append(f"table file {info['table_out']}")
    return "; ".join(parts) + f"\nfiles in {out_dir}"


def register(app: typer.Typer) -> None:
    app.command("search", help=HELP)(search_cmd)
