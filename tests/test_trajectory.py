"""Trajectories, sharpness and neighbourhoods of certainty (issue 14): the sharpness estimator
against exact eigenvalues, the certainty metric on a case with a known answer, tracking that
leaves the training bit-for-bit alone, the record and the figure, and the CLI's refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("xautodl")

from calnas.cli import main  # noqa: E402
from calnas.live.certainty import certainty_neighbourhoods, nearest_neighbour_distances  # noqa: E402
from calnas.live.evaluate import evaluate_live  # noqa: E402
from calnas.live.protocol import Protocol  # noqa: E402
from calnas.live.trajectory import TRACKED, top_eigenvalue, training_view  # noqa: E402

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
TINY = Protocol(dataset="digits", channels=4, cells=1, epochs=2, batch_size=32, train_size=64,
                val_size=40, test_size=80, threads=1)


# -- the sharpness estimator against the matrix itself -----------------------------------------

def _exact_matrices(model, x, y):
    """The Hessian and the Gauss-Newton matrix of the mean cross-entropy, formed in full."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def unflatten(vector):
        out, i = {}, 0
        for name, shape in zip(names, shapes):
            k = int(np.prod(shape))
            out[name] = vector[i:i + k].reshape(shape)
            i += k
        return out

    def logits(vector):
        return torch.func.functional_call(model, unflatten(vector), (x,))

    def loss(vector):
        return torch.nn.functional.cross_entropy(logits(vector), y)

    hessian = torch.autograd.functional.hessian(loss, flat).numpy()
    jac = torch.autograd.functional.jacobian(logits, flat).numpy()            # (B, K, P)
    p = torch.softmax(logits(flat), 1).detach().numpy()
    gn = sum(j.T @ (np.diag(q) - np.outer(q, q)) @ j for j, q in zip(jac, p)) / len(p)
    return hessian, gn


def test_top_eigenvalue_matches_the_exact_gauss_newton_and_hessian_eigenvalues():
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    x = torch.randn(16, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (16,))
    before = [p.detach().clone() for p in model.parameters()]
    hessian, gn = _exact_matrices(model, x, y)
    gn_eigs, h_eigs = np.linalg.eigvalsh(gn), np.linalg.eigvalsh(hessian)
    assert gn_eigs[0] > -1e-12                    # PSD, as the estimator assumes
    assert not np.isclose(gn_eigs[-1], h_eigs[-1], rtol=1e-3)  # the two matrices differ here
    assert top_eigenvalue(model, x, y, kind="gn", iterations=100) == pytest.approx(gn_eigs[-1], rel=1e-6)
    largest = h_eigs[np.argmax(np.abs(h_eigs))]   # power iteration finds the largest in magnitude
    assert top_eigenvalue(model, x, y, kind="hessian", iterations=100) == pytest.approx(largest, rel=1e-6)
    # The documented default (20 iterations, seeded start) is a lower bound, already close here.
    estimate = top_eigenvalue(model, x, y)
    assert estimate == top_eigenvalue(model, x, y)
    assert gn_eigs[-1] * 0.95 <= estimate <= gn_eigs[-1] * (1 + 1e-9)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="kind"):
        top_eigenvalue(model, x, y, kind="fisher")


def test_the_training_view_leaves_batch_norm_statistics_alone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(),
                                torch.nn.Linear(4, 2)).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    assert top_eigenvalue(training_view(model), x, y) > 0
    assert not model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


# -- neighbourhoods of certainty on a network whose answer is known ----------------------------

class _NearPointNet(torch.nn.Module):
    """Almost certain of class 0 within ``edge`` of a training point, split between classes 1
    and 2 (confidence 0.5) beyond it."""

    def __init__(self, points, edge: float):
        super().__init__()
        self.points = torch.as_tensor(points.reshape(len(points), -1), dtype=torch.float64)
        self.edge = edge

    def forward(self, x):
        dist = torch.cdist(x.reshape(len(x), -1).double(), self.points).min(1).values
        zero = torch.zeros_like(dist)
        return torch.stack([1e6 * (self.edge - dist), zero, zero], 1)


def test_certainty_neighbourhoods_on_a_known_answer():
    # 24 points on a line, 10 apart, in a 3x2x2 input space: nearest neighbours are 10 away.
    pool = np.zeros((24, 3, 2, 2), dtype=np.float32)
    pool[:, 0, 0, 0] = 10.0 * np.arange(24)
    assert np.allclose(nearest_neighbour_distances(pool[:5], pool), 10.0)
    # Radius 0.2 x 10 = 2, certain within 1: radii uniform in [0, 2] are certain half the time,
    # with confidence ~1 there and 0.5 elsewhere (mean 0.75).
    net = _NearPointNet(pool, edge=1.0)
    out = certainty_neighbourhoods(net, pool, device=torch.device("cpu"), points=20, directions=200,
                                   radius=0.2, seed=1)
    assert out["nn_distance_median"] == pytest.approx(10.0) and out["radius"] == pytest.approx(2.0)
    assert out["points"] == 20 and out["directions"] == 200 and out["threshold"] == 0.99
    sd = np.sqrt(0.25 / 4000)
    assert out["fraction_certain"] == pytest.approx(0.5, abs=5 * sd)
    assert out["mean_confidence"] == pytest.approx(0.5 + 0.5 * out["fraction_certain"], abs=1e-6)
    assert out["points_fraction_certain"] == 1.0 and out["points_mean_confidence"] == pytest.approx(1.0)
    assert out["prediction_kept"] == pytest.approx(out["fraction_certain"])
    assert certainty_neighbourhoods(net, pool, device=torch.device("cpu"), points=20, directions=200,
                                    radius=0.2, seed=1) == out   # seeded: the same draws
    # An absolute radius inside the certain ball: every perturbation is certain.
    inside = certainty_neighbourhoods(net, pool, device=torch.device("cpu"), points=5, directions=50,
                                      radius=0.9, relative=False)
    assert inside["radius"] == 0.9 and inside["radius_relative"] is None and inside["fraction_certain"] == 1.0


# -- tracking in a live evaluation -------------------------------------------------------------

def test_tracking_and_certainty_leave_the_training_and_metrics_bit_for_bit_alone():
    plain = evaluate_live(ARCH, protocol=TINY, device="cpu")
    plain_rng = torch.get_rng_state()
    tracked = evaluate_live(ARCH, protocol=TINY, device="cpu", track=True, certainty=True)
    assert torch.equal(torch.get_rng_state(), plain_rng)
    assert tracked.record["metrics"] == plain.record["metrics"]
    assert np.array_equal(tracked.probs, plain.probs)
    for key in ("steps", "final_train_loss", "final_train_acc"):
        assert tracked.record["training"][key] == plain.record["training"][key]
    assert "trajectory" not in plain.record and "certainty" not in plain.record
    trajectory = tracked.record["trajectory"]
    assert [e["epoch"] for e in trajectory["epochs"]] == [0, 1, 2]
    for entry in trajectory["epochs"]:
        assert all(np.isfinite(entry[key]) for key in TRACKED)
        assert 0 <= entry["acc"] <= 1 and 0 <= entry["ECE"] <= 1 and entry["sharpness"] > 0
    assert trajectory["settings"]["sharpness"]["batch_size"] == 64  # TINY trains on 64 images
    assert 0 <= tracked.record["certainty"]["fraction_certain"] <= 1
    json.dumps(tracked.record)


def test_cli_writes_the_trajectory_and_its_plot(capsys, tmp_path):
    figure = tmp_path / "new" / "trajectory.png"
    with pytest.raises(SystemExit) as exc:   # --plot-trajectory implies --track
        main(["evaluate", "0", "--live", "--epochs", "1", "-C", "4", "-N", "1", "--device", "cpu",
              "--plot-trajectory", str(figure), "--json"])
    assert exc.value.code == 0
    record = json.loads(capsys.readouterr().out)
    assert [e["epoch"] for e in record["trajectory"]["epochs"]] == [0, 1]
    assert record["trajectory_plot"] == str(figure) and "certainty" not in record
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,match", [
    (["--track"], "--track needs --live"),
    (["--certainty"], "--certainty needs --live"),
    (["--plot-trajectory", "t.png"], "--plot-trajectory needs --live"),
    (["--live", "--plot-trajectory", "t.gif"], ".png"),
    (["--live", "--plot-trajectory", "/proc/t.png"], "not writable"),
    (["--live", "--track", "--weights", "nats", "--dataset", "cifar10"], "loaded, not trained"),
])
def test_cli_refusals_are_one_line_and_exit_2(capsys, tmp_path, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "0", *args])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert match in err[0]
