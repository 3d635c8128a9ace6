"""Training recipes (--recipe NAME[:PARAM]) and the optimiser: each loss against a direct
computation, spec parsing, what is recorded, the CLI flags, and builds/tables/studies written
before recipes existed (docs/live.md, "Training recipes")."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest

from calnas.errors import UserError
from calnas.live.recipes import DEFAULT_RECIPE, RECIPES, canonical_recipe, format_param, parse_recipe

from conftest import ROOT

# -- specs (no torch) ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, canonical", [
    ("ce", "ce"), (" CE ", "ce"), ("focal", "focal:3"), ("focal:3.0", "focal:3"), ("focal:0", "focal:0"),
    ("label-smoothing", "label-smoothing:0.1"), ("label-smoothing:0", "label-smoothing:0"),
    ("mixup", "mixup:0.2"), ("mixup:0.4", "mixup:0.4"), ("mixup:1e-3", "mixup:0.001"), ("margin", "margin:0.1"),
    ("margin:0", "margin:0"), ("Focal: 2.5", "focal:2.5"),
])
def test_canonical_spelling_makes_the_parameter_explicit(text, canonical):
    assert canonical_recipe(text) == canonical
    assert canonical_recipe(canonical) == canonical  # a recorded spelling reads back as itself


@pytest.mark.parametrize("text, words", [
    ("bogus", "unknown recipe"), ("", "unknown recipe"), ("ce:0.1", "takes no parameter"),
    ("label-smoothing:1", "0 <= eps < 1"), ("label-smoothing:-0.1", "0 <= eps < 1"),
    ("focal:-1", "gamma >= 0"), ("mixup:0", "alpha > 0"), ("mixup:-2", "alpha > 0"), ("margin:-1", "weight >= 0"),
    ("focal:abc", "must be a number"), ("focal:nan", "must be a number"), ("focal:inf", "must be a number"),
    ("focal:", "must be a number"), ("focal:1_0", "must be a number"), ("focal:" + "9" * 500, "must be a number"),
])
def test_invalid_specs_are_one_line_errors(text, words):
    with pytest.raises(UserError, match=re.escape(words)) as info:
        parse_recipe(text)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_every_recipe_has_a_valid_documented_default():
    assert DEFAULT_RECIPE == "ce" and RECIPES["ce"].param is None
    docs = (ROOT / "docs" / "live.md").read_text()
    section = docs[docs.index("## Training recipes"):]
    section = section[:section.index("\n## ", 4)]
    for recipe in RECIPES.values():
        if recipe.param is not None:
            assert recipe.valid(recipe.default)
            assert parse_recipe(recipe.name) == (recipe.name, recipe.default)
            assert f"`{recipe.name}:{format_param(recipe.default)}`" in section, recipe.name  # one fact, one place
        else:
            assert f"`{recipe.name}`" in section


def test_protocol_records_the_canonical_recipe_and_optimizer():
    from calnas.live.protocol import DIGITS_SSS, DIGITS_TSS, Protocol, normalise_settings

    assert DIGITS_TSS.recipe == "ce" and DIGITS_TSS.optimizer == "SGD" and "loss" not in DIGITS_TSS.settings()
    proto = DIGITS_TSS.with_overrides(recipe="FOCAL", optimizer="adam", lr=0.01)
    assert (proto.recipe, proto.optimizer, proto.lr) == ("focal:3", "Adam", 0.01)
    assert Protocol.from_settings(proto.settings()) == proto
    for bad in ({"recipe": "focal:-1"}, {"optimizer": "rmsprop"}, {"lr": 0.0}, {"lr": float("nan")}, {"lr": "1"}):
        with pytest.raises(UserError):
            DIGITS_TSS.with_overrides(**bad)
    # A record written before recipes: loss cross_entropy, no recipe -> recipe ce, the same protocol.
    old = {k: v for k, v in DIGITS_SSS.settings().items() if k != "recipe"}
    old["loss"] = "cross_entropy"
    assert normalise_settings(old) == DIGITS_SSS.settings()
    assert Protocol.from_settings(old) == DIGITS_SSS
    with pytest.raises(UserError, match="cross_entropy"):
        normalise_settings({**old, "loss": "nll"})


# The protocol.json the digits-sss build wrote before recipes existed (the build was resumed
# with it after they came): byte for byte the record's content.
SSS_BUILD_RECORD = '{"space": "sss", "seed": 0, "order_seed": 20240501, "protocol": {"dataset": "digits", "space": "sss", "channels": 16, "cells": 5, "epochs": 4, "batch_size": 32, "eval_batch_size": 1100, "optimizer": "SGD", "lr": 0.2, "momentum": 0.9, "nesterov": true, "weight_decay": 0.0005, "schedule": "cosine", "loss": "cross_entropy", "train_size": 150, "val_size": 300, "test_size": 1097, "drop_last": false, "threads": 1}, "calnas_version": "0.1.0"}'


def test_the_builds_protocol_record_reads_as_ce():
    """The digits-sss build's record was written before recipes: it is the DIGITS_SSS protocol."""
    from calnas.live.build import protocol_identity, protocol_record
    from calnas.live.protocol import DIGITS_SSS
    from calnas.spaces import SSS

    old = json.loads(SSS_BUILD_RECORD)
    assert "recipe" not in old["protocol"] and old["protocol"]["loss"] == "cross_entropy"
    assert protocol_identity(old) == protocol_identity(protocol_record(DIGITS_SSS, SSS, 0))
    assert protocol_identity(old) != protocol_identity(protocol_record(DIGITS_SSS.with_overrides(recipe="focal"), SSS, 0))


# -- the losses against direct computations ---------------------------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("xautodl")

from calnas.live import losses  # noqa: E402
from calnas.live.protocol import Protocol  # noqa: E402

K = 4


def _batch(seed=0, n=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3, 2, 2)).astype(np.float32)
    y = rng.integers(0, K, n)
    y[0] = 3
    return torch.from_numpy(x), torch.from_numpy(y)


def _linear(seed=1):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, K))


def _np_logits(model, x: np.ndarray) -> np.ndarray:
    w = model[1].weight.detach().double().numpy()
    b = model[1].bias.detach().double().numpy()
    return x.reshape(len(x), -1).astype(np.float64) @ w.T + b


def _np_logp(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def _objective(recipe, model, x, y, seed=5):
    loss, logits = losses.make_objective(recipe, seed=seed, num_classes=K)(model, x, y)
    return float(loss.detach()), logits.detach().double().numpy()


def test_ce_label_smoothing_and_focal_against_numpy():
    x, y = _batch()
    model = _linear()
    z = _np_logits(model, x.numpy())
    logp = _np_logp(z)
    yn = y.numpy()
    onehot = np.eye(K)[yn]
    ce = -logp[np.arange(len(yn)), yn].mean()
    loss, logits = _objective("ce", model, x, y)
    assert np.allclose(logits, z, atol=1e-5) and loss == pytest.approx(ce, rel=1e-5)
    for eps in (0.0, 0.1, 0.3):
        targets = (1 - eps) * onehot + eps / K
        assert _objective(f"label-smoothing:{eps}", model, x, y)[0] == pytest.approx(-(targets * logp).sum(1).mean(), rel=1e-5)
    p_true = np.exp(logp[np.arange(len(yn)), yn])
    for gamma in (0.0, 1.0, 3.0):
        expected = -((1 - p_true) ** gamma * np.log(p_true)).mean()
        assert _objective(f"focal:{gamma}", model, x, y)[0] == pytest.approx(expected, rel=1e-5)
    assert _objective("focal:0", model, x, y)[0] == pytest.approx(ce, rel=1e-6)


def test_mixup_against_numpy():
    x, y = _batch(n=8)
    model = _linear()
    seed, alpha = 7, 0.4
    objective = losses.make_objective(f"mixup:{alpha}", seed=seed, num_classes=K)
    rng = np.random.default_rng(seed + losses._MIXUP_STREAM)  # the recipe's own stream
    xn, yn = x.numpy().astype(np.float64), y.numpy()
    for _ in range(3):  # one lambda and one pairing per batch, fresh each call
        lam = rng.beta(alpha, alpha)
        perm = rng.permutation(len(yn))
        mixed = lam * xn + (1 - lam) * xn[perm]
        targets = lam * np.eye(K)[yn] + (1 - lam) * np.eye(K)[yn[perm]]
        expected = -(targets * _np_logp(_np_logits(model, mixed))).sum(1).mean()
        loss, logits = objective(model, x, y)
        assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
        assert np.allclose(logits.detach().numpy(), _np_logits(model, mixed), atol=1e-5)


def test_margin_against_numpy():
    x, y = _batch(n=8)
    model = _linear()
    # Logits ~ 4 x[:K], with the true class's feature raised on half the images: some margins
    # fall below the floor, some are large.
    with torch.no_grad():
        model[1].weight.mul_(0.1).add_(4.0 * torch.eye(K, 12))
        flat = x.view(len(x), -1)
        flat[::2][torch.arange(4), y[::2]] += 3.0
    seed, weight = 11, 0.7
    objective = losses.make_objective(f"margin:{weight}", seed=seed, num_classes=K)
    gen = torch.Generator().manual_seed(seed + losses._MARGIN_STREAM)
    noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).numpy().astype(np.float64)
    xn, yn = x.numpy().astype(np.float64), y.numpy()
    z = _np_logits(model, xn)
    zp = _np_logits(model, xn + losses.SMOOTH_SIGMA * noise)
    true = z[np.arange(len(yn)), yn]
    others = z.copy()
    others[np.arange(len(yn)), yn] = -np.inf
    margins = true - others.max(1)
    assert (margins < losses.MARGIN_FLOOR).any() and (margins > 1).any()
    tail = np.exp(-np.maximum(margins, losses.MARGIN_FLOOR) / losses.MARGIN_TAU).mean()
    smooth = ((_np_logp(zp) - _np_logp(z)) ** 2).sum(1).mean() / losses.SMOOTH_SIGMA ** 2
    ce = -_np_logp(z)[np.arange(len(yn)), yn].mean()
    expected = ce + weight * (tail + losses.SMOOTH_WEIGHT * smooth)
    loss, logits = objective(model, x, y)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert np.allclose(losses.logit_margins(torch.from_numpy(z), y).numpy(), margins)


def test_margin_perturbed_forward_leaves_batch_norm_running_statistics_alone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Flatten(), torch.nn.Linear(12, K)).train()
    x, y = _batch(n=8)
    losses.make_objective("margin:0.5", seed=0, num_classes=K)(model, x, y)
    reference = torch.nn.BatchNorm2d(3).train()
    reference(x)  # one update, from the clean batch only
    bn = model[0]
    assert torch.equal(bn.running_mean, reference.running_mean) and torch.equal(bn.running_var, reference.running_var)
    assert int(bn.num_batches_tracked) == 1 and bn.momentum == reference.momentum


# -- training: the optimiser, what is recorded --------------------------------------------------

TINY = Protocol(dataset="digits", channels=4, cells=1, epochs=1, batch_size=32, train_size=48, val_size=30,
                test_size=60, threads=1)
TINY_FLAGS = ["--epochs", "1", "--channels", "4", "--cells", "1"]


@pytest.fixture(autouse=True)
def _torch_threads():
    """In-process trainings set torch's thread count; later tests get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def cli(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `calnas ARGS`, in-process (what `python -m calnas` runs)."""
    from calnas.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_protocols_optimizer_is_the_one_that_trains():
    from calnas.live.train import make_optimizer

    model = torch.nn.Linear(3, 2)
    sgd = make_optimizer(model, TINY)
    adam = make_optimizer(model, TINY.with_overrides(optimizer="adam", lr=0.003))
    assert type(sgd) is torch.optim.SGD and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    assert type(adam) is torch.optim.Adam and adam.defaults["lr"] == 0.003 and adam.defaults["weight_decay"] == 5e-4
    assert "momentum" not in adam.defaults and "nesterov" not in adam.defaults


def test_records_rows_and_protocol_json_carry_the_recipe(tmp_path):
    from calnas.live.build import build_table, table_row
    from calnas.live.evaluate import evaluate_live
    from calnas.spaces import TSS

    ce = evaluate_live(5, device="cpu", seed=0, protocol=TINY).record
    margin0 = evaluate_live(5, device="cpu", seed=0, protocol=TINY, recipe="margin:0").record
    smooth = evaluate_live(5, device="cpu", seed=0, protocol=TINY, recipe="label-smoothing").record
    adam = evaluate_live(5, device="cpu", seed=0, protocol=TINY, optimizer="adam", lr=0.01).record
    assert ce["settings"]["recipe"] == "ce" and smooth["settings"]["recipe"] == "label-smoothing:0.1"
    assert adam["settings"]["optimizer"] == "Adam" and adam["settings"]["lr"] == 0.01
    # margin:0 adds a perturbed forward that must not change the training: the same numbers as ce.
    assert margin0["metrics"] == ce["metrics"] and margin0["settings"]["recipe"] == "margin:0"
    assert smooth["metrics"] != ce["metrics"] and adam["metrics"] != ce["metrics"]
    assert table_row(smooth, TSS, TINY.with_overrides(recipe="label-smoothing"), 0, 48)["recipe"] == "label-smoothing:0.1"

    out = tmp_path / "b.csv"
    focal = TINY.with_overrides(recipe="focal:2")
    build_table(space=TSS, protocol=focal, out=out, limit=1)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and rows[0]["recipe"] == "focal:2"
    assert json.loads(out.with_name("b.csv.protocol.json").read_text())["protocol"]["recipe"] == "focal:2"
    from calnas.live.ship import read_build, ship_table

    ship_table(out, tmp_path / "b.csv.gz")  # the text column ships as it is
    assert read_build(out)["recipe"].tolist() == ["focal:2"]
    with pytest.raises(UserError, match="different protocol"):
        build_table(space=TSS, protocol=TINY, out=out, limit=2, resume=True)


def _make_old(out):
    """Turn a build made now into one written before recipes: no recipe column, loss in the record."""
    lines = out.read_text().splitlines(keepends=True)
    header = next(csv.reader([lines[0]]))
    drop = header.index("recipe")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in csv.reader(lines):
        writer.writerow(row[:drop] + row[drop + 1:])
    out.write_text(buf.getvalue())
    meta_path = out.with_name(out.name + ".protocol.json")
    meta = json.loads(meta_path.read_text())
    assert meta["protocol"].pop("recipe") == "ce"
    meta["protocol"]["loss"] = "cross_entropy"
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")


def test_resume_of_a_build_written_before_recipes_keeps_its_layout(tmp_path, capsys):
    import calnas
    from calnas.live.build import build_table
    from calnas.live.evaluate import make_protocol
    from calnas.spaces import TSS

    out = tmp_path / "old.csv"
    code, _, err = cli(capsys, "table", "build", "--out", out, "--limit", "2", *TINY_FLAGS)
    assert code == 0, err
    _make_old(out)
    before = out.read_bytes()
    assert b"recipe" not in before
    code, _, err = cli(capsys, "table", "build", "--out", out, "--limit", "3", "--resume", *TINY_FLAGS)
    assert code == 0, err
    assert "2 architectures already present" in err and "wrote 1" in err
    after = out.read_bytes()
    assert after.startswith(before)  # complete rows stay byte for byte, the header too
    rows = list(csv.reader(io.StringIO(after.decode())))
    assert len(rows) == 4 and all(len(r) == len(rows[0]) for r in rows) and "recipe" not in rows[0]
    # Another recipe is another protocol: refused, the file untouched.
    mixup = make_protocol(TSS, "digits", epochs=1, channels=4, cells=1, recipe="mixup")
    with pytest.raises(UserError, match="different protocol"):
        build_table(space=TSS, protocol=mixup, out=out, limit=4, resume=True)
    assert out.read_bytes() == after
    # The older table searches as a benchmark.
    assert calnas.search(str(out), "acc,ece", budget=2).evaluations == 2


def test_live_search_appends_to_an_older_table_and_a_study_made_before_recipes_continues(tmp_path):
    import optuna

    import calnas
    from calnas import record as rec
    from calnas.live.build import build_table
    from calnas.spaces import TSS

    table = tmp_path / "t.csv"
    build_table(space=TSS, protocol=TINY, out=table, limit=2)
    _make_old(table)
    built = table.read_bytes()
    url = f"sqlite:///{tmp_path / 's.db'}"
    config = calnas.LiveConfig(dataset="digits", protocol=TINY, table_out=table)
    calnas.search(objectives="acc,ece", budget=3, seed=0, storage=url, live=config)
    after = table.read_bytes()
    assert after.startswith(built) and b"recipe" not in after and len(after.splitlines()) >= 4
    # Make the stored study look like one made before recipes, then continue it.
    study = optuna.load_study(study_name="calnas", storage=url)
    described = dict(study.user_attrs[rec.STUDY_ATTR])
    protocol = json.loads(json.dumps(described["protocol"]))
    assert protocol["protocol"].pop("recipe") == "ce"
    protocol["protocol"]["loss"] = "cross_entropy"
    study.set_user_attr(rec.STUDY_ATTR, {**described, "protocol": protocol})
    result = calnas.search(objectives="acc,ece", budget=4, seed=0, storage=url, live=config)
    assert result.evaluations == 4
    with pytest.raises(UserError, match="searches another protocol") as refused:
        calnas.search(objectives="acc,ece", budget=5, seed=0, storage=url,
                      live=config.replace(recipe="focal", table_out=tmp_path / "other.csv"))
    # Only the differing settings are named, not both protocol records.
    assert "protocol.recipe: ce stored, focal:3 now" in str(refused.value) and "batch_size" not in str(refused.value)


def test_only_the_ce_digits_protocol_is_measured_against_the_embedded_table():
    import calnas
    from calnas.live.search import live_evaluator

    default, _ = live_evaluator(calnas.LiveConfig(dataset="digits"), "acc,ece", [], None)
    assert default.training.recipe == "ce" and default.covers_space
    focal, _ = live_evaluator(calnas.LiveConfig(dataset="digits", recipe="focal"), "acc,ece", [], None)
    assert focal.training.recipe == "focal:3" and not focal.covers_space


# -- the CLI ----------------------------------------------------------------------------------

def test_cli_recipe_flag_on_evaluate_table_build_and_search(tmp_path, capsys):
    code, shown, err = cli(capsys, "evaluate", "5", "--live", "--device", "cpu", *TINY_FLAGS, "--recipe", "focal:2",
                           "--json")
    assert code == 0, err
    assert json.loads(shown)["settings"]["recipe"] == "focal:2"

    out = tmp_path / "b.csv"
    code, _, err = cli(capsys, "table", "build", "--out", out, "--limit", "1", *TINY_FLAGS, "--recipe",
                       "label-smoothing:0.05", "--optimizer", "adam", "--lr", "0.01")
    assert code == 0, err
    row = next(csv.DictReader(out.open()))
    assert row["recipe"] == "label-smoothing:0.05"
    recorded = json.loads(out.with_name("b.csv.protocol.json").read_text())["protocol"]
    assert (recorded["recipe"], recorded["optimizer"], recorded["lr"]) == ("label-smoothing:0.05", "Adam", 0.01)

    config = tmp_path / "c.yaml"
    config.write_text("recipe: mixup\nlr: 0.05\n")
    code, _, err = cli(capsys, "search", "--live", "--budget", "2", *TINY_FLAGS, "--config", config, "--out",
                       tmp_path / "s", "--no-plot", "--json")
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "s" / "table.csv").open()))
    assert len(rows) == 2 and {r["recipe"] for r in rows} == {"mixup:0.2"}
    recorded = json.loads((tmp_path / "s" / "table.csv.protocol.json").read_text())["protocol"]
    assert recorded["recipe"] == "mixup:0.2" and recorded["lr"] == 0.05


@pytest.mark.parametrize("args, words", [
    (["evaluate", "5", "--live", "--recipe", "focal:-1"], "gamma >= 0"),
    (["evaluate", "5", "--recipe", "focal"], "add --live"),
    (["evaluate", "5", "--live", "--weights", "nats", "--recipe", "focal"], "loaded, not trained"),
    (["table", "build", "--out", "{tmp}/x.csv", "--recipe", "label-smoothing:1"], "0 <= eps < 1"),
    (["table", "build", "--out", "{tmp}/x.csv", "--optimizer", "rmsprop"], "unknown optimizer"),
    (["search", "--live", "--recipe", "mixup:0", "--out", "{tmp}/s"], "alpha > 0"),
    (["search", "--recipe", "mixup", "--out", "{tmp}/s"], "add --live"),
    (["search", "--live", "--lr", "-1", "--out", "{tmp}/s"], "lr must be a positive number"),
])
def test_cli_bad_recipe_options_are_one_line(tmp_path, capsys, args, words):
    code, _, err = cli(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert code == 2, err
    assert err.startswith("error: ") and words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()


def test_the_real_entry_point_takes_the_flag(run_cli):
    result = run_cli("evaluate", "--help", env={"COLUMNS": "400"})
    text = " ".join(result.stdout.split())
    for recipe in RECIPES.values():
        assert recipe.name in text
        if recipe.param is not None:
            assert f"default {format_param(recipe.default)}" in text
    bad = run_cli("evaluate", "5", "--live", "--recipe", "focal:x")
    assert bad.returncode == 2 and bad.stderr == "error: recipe focal: gamma must be a number, got 'x'\n"
