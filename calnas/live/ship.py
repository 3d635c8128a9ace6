"""Turn a finished build CSV into the compressed table shipped in ``calnas/data``.

Rows are sorted by index, floats rounded to 6 significant digits (far below the metrics'
sampling noise on a 1,097-image test split), and the gzip header carries no timestamp so that
the same build gives the same bytes. A large table can be shipped in ``parts``: consecutive row
slices, each a complete gzipped CSV with the header, named ``NAME-1.csv.gz`` ... (the repository
keeps every file under 8 MB; the 32,768-row size-space table is about 13 MB). Also summarises
the table for the README.

Only pandas/numpy here: shipping needs no torch.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

from calnas.errors import UserError

SIGNIFICANT_DIGITS = 6


def read_build(path) -> "pd.DataFrame":  # noqa: F821
    import pandas as pd

    from calnas.files import check_input

    path = check_input(path, "build file", "table")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError) as exc:
        # OSError: gzip.BadGzipFile (not gzip); EOFError: a truncated .csv.gz
        raise UserError(f"{path} is not a calnas build table ({type(exc).__name__}: "
                        f"{(str(exc).splitlines() or [''])[0][:120]})") from None
    if "index" not in frame.columns or "acc" not in frame.columns:
        raise UserError(f"{path} is not a calnas build table (no index/acc columns)")
    if frame.empty:
        raise UserError(f"{path} has no rows; expected a calnas build table")
    for column in frame.columns.drop(["arch", "recipe"], errors="ignore"):
        values = pd.to_numeric(frame[column], errors="coerce")
        if (values.isna() & frame[column].notna()).any() or (column in ("index", "acc") and values.isna().any()):
            raise UserError(f"{path} is not a calnas build table (column {str(column)[:40]!r} holds non-numbers)")
        frame[column] = values
    if (frame["index"] != frame["index"].round()).any():
        raise UserError(f"{path} is not a calnas build table (index holds non-integers)")
    _check_architectures(path, frame)
    from calnas.curve_table import is_curve_frame

    # A curve build holds one row per architecture and training seed.
    key = ["index", "seed"] if is_curve_frame(frame) else ["index"]
    if frame.duplicated(key).any():
        dup = frame.loc[frame.duplicated(key)].iloc[0]
        which = f"architecture {int(dup['index'])}" + (f" with seed {int(dup['seed'])}" if len(key) == 2 else "")
        raise UserError(f"{path}: {which} appears twice")
    return frame.sort_values(key).reset_index(drop=True)


def _check_architectures(path, frame) -> None:
    """Every arch string is one of its space's and agrees with its index, so the summary's
    per-architecture lookups (parameter counts, NATS-Bench accuracies) cannot fail or misalign."""
    space = _space_of(frame)
    if space is None:
        if (frame["index"] < 0).any():
            raise UserError(f"{path} is not a calnas build table (a negative index)")
        return
    for row, value in frame["arch"].items():
        try:
            index = space.index(value)
        except UserError as exc:
            raise UserError(f"{path}: row {row + 1} has an arch that is not in the {space.name} space: {exc}") from None
        if index != int(frame.at[row, "index"]):
            raise UserError(f"{path}: row {row + 1} has index {int(frame.at[row, 'index'])} but its arch "
                            f"{str(value)[:60]!r} is architecture {index} of the {space.name} space")


MAX_PARTS = 100


def part_paths(out_gz, parts: int) -> list[Path]:
    """The files a table shipped as ``out_gz`` in ``parts`` slices is written to, in row order."""
    out_gz = Path(out_gz)
    if parts == 1:
        return [out_gz]
    name = out_gz.name
    stem, suffix = (name[: -len(".csv.gz")], ".csv.gz") if name.endswith(".csv.gz") else (out_gz.stem, out_gz.suffix)
    return [out_gz.with_name(f"{stem}-{k}{suffix}") for k in range(1, parts + 1)]


def ship_table(build_csv, out_gz, *, expected_rows: int | None = None, parts: int = 1) -> dict:
    """Write ``out_gz`` (or its ``parts`` row slices, see :func:`part_paths`) from ``build_csv``;
    returns :func:`summarise` of the table with the files written and their sizes."""
    from calnas.files import check_output_file

    if not 1 <= parts <= MAX_PARTS:
        raise UserError(f"--parts must be between 1 and {MAX_PARTS}, got {parts}")
    paths = part_paths(out_gz, parts)
    for path in paths:
        check_output_file(path, "the shipped table")
        if Path(build_csv).exists() and path.exists() and os.path.samefile(path, build_csv):
            raise UserError(f"{path} is the build file itself; write the shipped table to another file")
    frame = read_build(build_csv)
    if expected_rows is not None and len(frame) != expected_rows:
        raise UserError(f"{build_csv} has {len(frame)} rows, expected {expected_rows} (build not finished?)")
    if parts > len(frame):
        raise UserError(f"--parts {parts} is more than the build's {len(frame)} rows")
    # Slices as even as the rows allow, larger first (4 rows in 3 parts: 2, 1, 1): no part is empty.
    bounds = [-(-len(frame) * k // parts) for k in range(parts + 1)]
    files = {}
    for k, path in enumerate(paths):
        text = frame.iloc[bounds[k]:bounds[k + 1]].to_csv(
            index=False, float_format=f"%.{SIGNIFICANT_DIGITS}g", lineterminator="\n")
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
            gz.write(text.encode("utf-8"))
        path.write_bytes(buf.getvalue())
        files[str(path)] = len(buf.getvalue())
    return {**summarise(frame), "files": files}


def summarise(frame) -> dict:
    """The numbers the README states: spread of accuracy and calibration, build time."""
    out = {"rows": int(len(frame))}
    for column in ("acc", "pre_ECE_15", "post_ECE_15", "pre_NLL", "temperature"):
        if column in frame.columns:
            values = frame[column].astype(float)
            q = values.quantile([0.0, 0.1, 0.5, 0.9, 1.0])
            out[column] = {"min": float(q.iloc[0]), "p10": float(q.iloc[1]), "median": float(q.iloc[2]),
                           "p90": float(q.iloc[3]), "max": float(q.iloc[4])}
    if "acc" in frame.columns and "pre_ECE_15" in frame.columns:
        out["spearman_acc_pre_ECE_15"] = float(frame["acc"].corr(frame["pre_ECE_15"], method="spearman"))
    space = _space_of(frame)
    if space is not None and space.name == "tss":
        out["spearman_acc_nats_cifar10"] = _agreement_with_nats(frame)
    if space is not None and "acc" in frame.columns:
        out.update(_agreement_with_size(frame, space))
    if "train_seconds" in frame.columns:
        out["cpu_seconds_total"] = float(frame["train_seconds"].sum() + frame.get("eval_seconds", 0).sum())
    return out


def _space_of(frame):
    """The space of the build's arch column, or None (no column, or not calnas's strings)."""
    from calnas.spaces import infer_space

    if "arch" not in frame.columns:
        return None
    try:
        return infer_space(frame["arch"].head(20))
    except UserError:
        return None


def _agreement_with_size(frame, space) -> dict:
    """Spearman correlation of accuracy with the network's parameter count (calnas.cost's
    NATS-Bench network, as the table's params column) and, for SSS, with its summed widths."""
    import pandas as pd

    from calnas.tables import space_costs

    out = {}
    params = space_costs(space, "digits").get("params")
    if params is not None:
        out["spearman_acc_params"] = float(frame["acc"].corr(pd.Series(params[frame["index"].astype(int)],
                                                                       index=frame.index), method="spearman"))
    if space.name == "sss":
        widths = frame["arch"].astype(str).str.split(":").map(lambda parts: sum(int(w) for w in parts))
        out["spearman_acc_width"] = float(frame["acc"].corr(widths, method="spearman"))
    return out


def _agreement_with_nats(frame) -> float:
    """Spearman correlation of the table's accuracy with NATS-Bench's CIFAR-10 test accuracy."""
    import pandas as pd

    from calnas.embedded import ACCURACY_FILE, data_path

    with data_path(ACCURACY_FILE).open("rb") as fh:
        nats = pd.read_csv(fh, compression="gzip").set_index("index")["cifar10_test_acc"]
    return float(frame["acc"].corr(nats.reindex(frame["index"]).reset_index(drop=True), method="spearman"))
