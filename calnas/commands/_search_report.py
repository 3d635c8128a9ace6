"""`calnas search`'s output: the result folder (checked and claimed before the search runs),
the files in it, and what is printed (the front table and a summary line, or the JSON summary).
`calnas show` reports a stored search the same way."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path

from calnas.commands._common import console, fmt, print_json


@contextmanager
def result_folder(out):
    """The result folder, checked (a folder calnas can write, no result file name taken by a
    folder or the like) and claimed against other calnas runs before any work: ``out``, or
    without it a new runs/search-NNN."""
    from calnas.files import claim_folder
    from calnas.result import check_result_files

    with ExitStack() as stack:
        if out is not None:
            folder = stack.enter_context(claim_folder(out))
            check_result_files(folder)
            yield folder
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



def report(result, out, *, as_json: bool, plot: bool) -> None:
    """Write the result files and print the front (or the JSON summary)."""
    out_dir = Path(out) if out is not None else _new_run_dir()
    paths = result.save(out_dir, plot=plot)  # also removes an earlier run's figures it does not draw
    if as_json:
        print_json({**result.summary(), "out": str(out_dir), "files": {k: str(v) for k, v in paths.items()}})
        return
    console.print(_front_table(result))
    console.print(_summary_line(result, out_dir))


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
    resumed = info.get("resumed")
    if resumed:
        held, budget = resumed["held"], info["budget"]
        text = f"run {resumed['runs']} of this study"
        if held is not None:
            text += f", which held {held} evaluations at its start"
            if held > budget:
                text += f", more than its budget of {budget}: nothing new evaluated, all {held} reported"
            elif held == budget:
                text += f", its whole budget of {budget}: nothing new evaluated"
        if resumed["changed"]:
            text += (f"; earlier runs had another {' and '.join(resumed['changed'])} "
                     "(summary.json lists every run's settings)")
        parts.append(text)
    if info.get("journal_repaired"):
        parts.append(f"the journal's torn last line (a write that failed midway) was cut off; the file as it was "
                     f"is kept as {info['journal_repaired']}")
    if info.get("foreign_trials"):
        parts.append(f"{info['foreign_trials']} finished trials calnas did not write (plain Optuna, or edited) "
                     "ignored")
    parts.append(f"hypervolume {result.hypervolume:.4f}")
    if result.hypervolume_ratio is not None:
        scope = "true front" if info["covers_space"] else "front of the table"
        parts.append(f"{result.hypervolume_ratio:.4f} of the {scope} ({result.true_hypervolume:.4f}); "
                     f"{result.true_front_found} of its {len(result.true_front)} members found")
    ceiling = info.get("noise_ceiling")
    if ceiling:
        parts.append(f"noise ceiling {ceiling['median']:.4f} (one seed's true front on another seed's values; "
                     f"{ceiling['min']:.4f}-{ceiling['max']:.4f} over {ceiling['pairs']} seed pairs)")
    sim = info.get("simulation")
    if sim:
        stopped = ", ".join(f"{n} {s}" for s, n in sim["stopped"].items())
        if "simulated_clock" in sim:
            parts.append(f"simulated {sim['early_stopping']} on {sim['simulated_workers']} workers: "
                         f"{sim['epochs_trained']} epochs, {sim['train_seconds']:.1f} training seconds, "
                         f"{sim['simulated_clock']:.1f}s simulated; {stopped}")
        else:
            parts.append(f"{sim['early_stopping']}: {sim['epochs_trained']} epochs trained, "
                         f"{sim['train_seconds']:.1f} training CPU seconds; {stopped}")
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

