"""Post-hoc calibrators: fitted on a validation split's logits, applied to any logits.

Every calibrator has the same interface, and every fit is deterministic (no random start, no
stochastic optimiser)::

    cal = make_calibrator("dirichlet").fit(val_logits, val_labels)
    probs = cal.predict_proba(test_logits)          # (N, K), rows sum to 1
    cal.params()                                     # the fitted parameters where they are few

The names (:data:`calnas.calibrator_columns.CALIBRATOR_NAMES`): ``temperature``, ``vector``,
``matrix``, ``dirichlet``, ``histogram``, ``isotonic``, ``ets``. Definitions, defaults and
references: docs/metrics.md, "Post-hoc calibrators".

Why no calibration library at run time: netcal and torch-uncertainty both need torch (and netcal
pyro and tensorboard besides), while this package must work without torch (the table-search
path never imports it); and each of the scaling fits here is a small convex problem solved with
exact derivatives (Newton's method), faster than those libraries' torch fits except Dirichlet
calibration at K = 100 (benchmarks/calibrators_speed.py, docs/metrics.md). They are the test
suite's independent peers instead (tests/calibrator_peers.py). Isotonic regression is the exception: scikit-learn's
pool-adjacent-violators solver is the maintained reference, so ``isotonic`` calls it
(``sklearn.isotonic.isotonic_regression``, imported only when that calibrator is fitted).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.optimize import minimize

from calnas.calibrator_columns import CALIBRATOR_NAMES
from calnas.errors import UserError
from calnas.metrics._inputs import check_labels, check_matrix, softmax
from calnas.metrics.temperature import TEMPERATURE_METHODS, fit_temperature

# ODIR (Kull et al. 2019): lambda weighs the mean squared off-diagonal weight, mu the mean
# squared intercept. Kull et al. pick both by cross-validation per data set; calnas fixes
# defaults so that a table's columns mean the same for every row: the best mean cross-validated
# validation NLL over ten digits-tss networks on the grid 0.01, 0.1, 1 (docs/metrics.md).
# Vector scaling has no off-diagonal; its intercept penalty keeps the fit finite where a class is
# separable on the validation split (unpenalised, such a class's scale grows without bound).
MATRIX_ODIR = 0.1
DIRICHLET_ODIR = 1.0
VECTOR_MU = 0.01
HISTOGRAM_BINS = 15
# The scaling fits: Newton's method while the Hessian is small (up to NEWTON_MAX_PARAMS parameters,
# NEWTON_MAX_ENTRIES entries of its per-sample features), stopped when half the Newton decrement
# (the predicted loss reduction) is below NEWTON_TOL, or below NEWTON_FLAT_TOL while shrinking
# less than tenfold a step: near a finite optimum Newton's decrement falls by orders of magnitude
# a step, while on a small validation split that separates a class the loss only creeps lower
# along the unbounded direction, towards no finite optimum (a 1e-14 tolerance ran such fits to
# the iteration cap, five times longer). Beyond that, Newton steps solved by
# conjugate gradients: preconditioned (see _newton_cg) for matrix and Dirichlet calibration,
# stopped when the gradient's norm is below CG_GTOL, where the loss is within about 1e-10 of its
# optimum on the benchmark's problems (probabilities within about 2e-4 of a fit run to 1e-7);
# scipy's trust-region Newton-CG for vector scaling, stopped at TRUST_GTOL. The iteration caps bound
# separable inputs, whose NLL keeps falling.
NEWTON_MAX_PARAMS = 2500
NEWTON_MAX_ENTRIES = 5_000_000
NEWTON_TOL = 1e-14
NEWTON_FLAT_TOL = 1e-10
NEWTON_RIDGE = 1e-10
NEWTON_MAXITER = 100
CG_GTOL = 1e-5
CG_MAXITER = 1000
TRUST_GTOL = 1e-7


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class Calibrator:
    """Fit on held-out logits and labels; map logits to calibrated probabilities."""

    name: ClassVar[str]
    keeps_top1: ClassVar[bool]  # whether the top-1 prediction (and so the accuracy) never changes
    n_classes: int | None = None

    def fit(self, logits, labels) -> "Calibrator":
        z = check_matrix(logits, "validation logits", min_samples=1)
        y = check_labels(labels, z.shape[0], z.shape[1], "validation labels")
        self.n_classes = z.shape[1]
        self._fit(z, y)
        return self

    def _inputs(self, logits) -> np.ndarray:
        if self.n_classes is None:
            raise UserError(f"the {self.name} calibrator is not fitted; call fit(val_logits, val_labels) first")
        z = check_matrix(logits, "logits", min_samples=1)
        if z.shape[1] != self.n_classes:
            raise UserError(f"logits have {z.shape[1]} classes but the {self.name} calibrator was fitted on "
                            f"{self.n_classes}")
        return z

    def predict_proba(self, logits) -> np.ndarray:
        z = self._inputs(logits)
        scaled = self._logits(z)
        return softmax(scaled) if scaled is not None else self._probs(z)

    def calibrated_logits(self, logits) -> np.ndarray | None:
        """Logits whose softmax is the calibrated prediction, for the methods that have them
        (so that the NLL is exact); None for the binning methods."""
        return self._logits(self._inputs(logits))

    def params(self) -> dict:
        return {}

    def _fit(self, z: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _logits(self, z: np.ndarray) -> np.ndarray | None:
        return None

    def _probs(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class TemperatureScaling(Calibrator):
    """softmax(z / T), T from :func:`calnas.metrics.fit_temperature` (``ece_grid``, the study's
    protocol and the post_* columns' fit, or ``nll``)."""

    name = "temperature"
    keeps_top1 = True

    def __init__(self, method: str = "ece_grid"):
        if method not in TEMPERATURE_METHODS:
            raise UserError(f"unknown temperature method {method!r}; expected one of {TEMPERATURE_METHODS}")
        self.method = method

    def _fit(self, z, y):
        self.temperature = fit_temperature(z, y, self.method)

    def _logits(self, z):
        return z / self.temperature

    def params(self):
        return {"temperature": self.temperature}


class _Affine(Calibrator):
    """softmax(W x + b) with x the logits (or their log-softmax), fitted by minimising the mean NLL
    plus ODIR: lambda / (K (K - 1)) * sum of squared off-diagonal W + mu / K * sum of squared b.
    ``diagonal`` restricts W to a diagonal (vector scaling). Starts at W = I, b = 0: the
    uncalibrated prediction."""

    keeps_top1 = False
    diagonal = False
    log_probs = False

    def __init__(self, lam: float = 0.0, mu: float = 0.0):
        for label, value in (("lambda", lam), ("mu", mu)):
            if not (np.isfinite(value) and value >= 0):
                raise UserError(f"ODIR {label} must be a finite number >= 0, got {value!r}")
        self.lam, self.mu = float(lam), float(mu)

    def _features(self, z):
        return _log_softmax(z) if self.log_probs else z

    def _fit(self, z, y):
        x = self._features(z)
        n, k = x.shape
        # Solved for standardised features, s_i = W' (x_i - m) / sigma + c: the same problem (the
        # penalty stays on W = W' / sigma and b = c - W m), without the coupling of W and b that
        # all-negative log-probabilities give, or the imbalance of wide features against the
        # intercept: both slowed the solvers several times.
        m = x.mean(axis=0)
        sigma = x.std(axis=0)
        sigma[~(sigma > 0)] = 1.0
        problem = _AffineProblem((x - m) / sigma, m, sigma, y, self.diagonal, self.lam, self.mu)
        d = 2 if self.diagonal else k + 1  # parameters per class: (w_a, c_a) or (W_a., c_a)
        if k * d <= NEWTON_MAX_PARAMS and n * k * d <= NEWTON_MAX_ENTRIES:
            v = _newton(problem)
        elif self.diagonal:
            v = _trust_ncg(problem)
        else:
            v = _newton_cg(problem)
        w = (v[:, 0] if self.diagonal else v[:, :-1]) / sigma
        self.weights = w  # vector scaling: the diagonal, as a vector
        self.bias = v[:, -1] - (w * m if self.diagonal else w @ m)

    def _logits(self, z):
        x = self._features(z)
        return (x * self.weights if self.diagonal else x @ self.weights.T) + self.bias


class _AffineProblem:
    """Mean NLL of softmax(s), s_ia = sum_j V_aj F_iaj, plus ODIR, with V (K, d) the parameters:
    full, F_ia = ((x_i - m) / sigma, 1) (V = [W sigma | c]); diagonal, F_ia = ((x_ia - m_a) /
    sigma_a, 1) (V = [w sigma | c]). The penalty is on W = V / sigma and b = c - W m."""

    def __init__(self, xc, m, sigma, y, diagonal, lam, mu):
        n, k = xc.shape
        self.xc, self.y, self.diagonal, self.n, self.k = xc, y, diagonal, n, k
        # full: the shared features with the intercept's column, so that scores and gradients
        # are one matrix product each
        self.xt = None if diagonal else np.column_stack([xc, np.ones(n)])
        self.rows = np.arange(n)
        self.d = 2 if diagonal else k + 1
        self.lam = lam / (k * (k - 1))  # per squared off-diagonal weight
        self.mu = mu / k  # per squared intercept
        # b_a = V_a . g_a: the intercept of the raw features
        shift = -m / sigma
        self.g = np.column_stack([shift, np.ones(k)]) if diagonal else np.broadcast_to(np.append(shift, 1.0), (k, k + 1))
        # the weight of each squared parameter in the off-diagonal penalty (W_aj^2 = V_aj^2 / sigma_j^2)
        self.penalised = np.zeros((k, self.d))
        if not diagonal:
            self.penalised[:, :-1] = (1.0 - np.eye(k)) / sigma**2
        # W = I, b = 0: the uncalibrated prediction
        self.start = np.column_stack([sigma, m]) if diagonal else np.column_stack([np.diag(sigma), m])

    def scores(self, v):
        if self.diagonal:
            return self.xc * v[:, 0] + v[:, 1]
        return self.xt @ v.T

    def probs_loss(self, v):
        s = self.scores(v)
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        total = e.sum(axis=1)
        loss = np.log(total).mean() - s[self.rows, self.y].mean()
        e /= total[:, None]
        b = np.einsum("ad,ad->a", v, self.g)
        loss += self.lam * float(np.sum(self.penalised * v**2)) + self.mu * float(b @ b)
        return e, loss, b

    def loss_grad(self, v):
        p, loss, b = self.probs_loss(v)
        p[self.rows, self.y] -= 1.0
        p /= self.n  # d mean NLL / d s
        if self.diagonal:
            grad = np.column_stack([np.einsum("ia,ia->a", p, self.xc), p.sum(axis=0)])
        else:
            grad = p.T @ self.xt
        grad += 2.0 * self.lam * self.penalised * v + 2.0 * self.mu * b[:, None] * self.g
        return loss, grad

    def hessian_vector(self, p, v):
        """The Hessian at the point whose probabilities are ``p``, times a direction ``v`` (K, d)."""
        ds = self.scores(v)  # linear in the parameters: the change of every score along v
        r = p * (ds - np.einsum("ia,ia->i", p, ds)[:, None])
        r /= self.n
        if self.diagonal:
            out = np.column_stack([np.einsum("ia,ia->a", r, self.xc), r.sum(axis=0)])
        else:
            out = r.T @ self.xt
        out += 2.0 * self.lam * self.penalised * v + 2.0 * self.mu * np.einsum("ad,ad->a", v, self.g)[:, None] * self.g
        return out

    def features(self):
        """F (N, K, d), for the Hessian."""
        if self.diagonal:
            return np.stack([self.xc, np.ones_like(self.xc)], axis=2)
        return np.broadcast_to(self.xt[:, None, :], (self.n, self.k, self.d))

    def hessian(self, v, f):
        p, _, _ = self.probs_loss(v)
        kd = self.k * self.d
        q = (p[:, :, None] * f).reshape(self.n, kd)
        h = -(q.T @ q)
        blocks = np.einsum("ia,iaj,ial->ajl", p, f, f)
        for a in range(self.k):
            h[a * self.d:(a + 1) * self.d, a * self.d:(a + 1) * self.d] += blocks[a]
        h /= self.n
        h[np.diag_indices(kd)] += 2.0 * self.lam * self.penalised.ravel()
        for a in range(self.k):
            h[a * self.d:(a + 1) * self.d, a * self.d:(a + 1) * self.d] += 2.0 * self.mu * np.outer(self.g[a], self.g[a])
        return h


def _backtrack(problem: "_AffineProblem", v, step, loss: float, decrement: float):
    """The Newton step ``v - t * step``, t halved from 1 until the loss falls by a quarter of the
    predicted decrease (Armijo); returns the new point, its loss and its gradient."""
    t = 1.0
    while True:
        candidate = v - t * step
        new_loss, new_grad = problem.loss_grad(candidate)
        if new_loss <= loss - 0.25 * t * decrement or t < 1e-10:
            return candidate, new_loss, new_grad
        t *= 0.5


def _newton(problem: _AffineProblem) -> np.ndarray:
    """Damped Newton with a backtracking line search: the convex loss to its optimum in a few
    dozen steps, where L-BFGS can need thousands on ill-conditioned log-probability features.
    A small ridge keeps the step finite along the flat directions of softmax (adding a constant
    to every class's score), which change no prediction."""
    f = problem.features()
    v = problem.start.astype(np.float64).copy()
    loss, grad = problem.loss_grad(v)
    previous = np.inf
    for _ in range(NEWTON_MAXITER):
        h = problem.hessian(v, f)
        ridge = NEWTON_RIDGE * max(1.0, float(np.trace(h)) / h.shape[0])
        step = np.linalg.solve(h + ridge * np.eye(h.shape[0]), grad.ravel()).reshape(v.shape)
        decrement = float(grad.ravel() @ step.ravel())
        if decrement / 2.0 <= NEWTON_TOL or (decrement / 2.0 <= NEWTON_FLAT_TOL and decrement > 0.1 * previous):
            break
        previous = decrement
        v, loss, grad = _backtrack(problem, v, step, loss, decrement)
    return v


def _trust_ncg(problem: _AffineProblem) -> np.ndarray:
    """Newton's method by conjugate gradients in a trust region (scipy's trust-ncg), with exact
    Hessian-vector products, for problems too large for a Hessian (K of about 50 and more): each
    product costs about one gradient, and it needs far fewer than L-BFGS on the ill-conditioned
    log-probability features."""
    shape = problem.start.shape
    cache = {}

    def fun(theta):
        loss, grad = problem.loss_grad(theta.reshape(shape))
        return loss, grad.ravel()

    def hessp(theta, vector):
        key = theta.tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = problem.probs_loss(theta.reshape(shape))[0]
        return problem.hessian_vector(cache[key], vector.reshape(shape)).ravel()

    result = minimize(fun, problem.start.ravel(), jac=True, hessp=hessp, method="trust-ncg",
                      options={"gtol": TRUST_GTOL, "maxiter": CG_MAXITER})
    return result.x.reshape(shape)


def _newton_cg(problem: _AffineProblem) -> np.ndarray:
    """Newton's method for the full affine maps too large for a Hessian, each step solved by
    preconditioned conjugate gradients (truncated at the usual forcing tolerance) and damped by a
    backtracking line search. The preconditioner is the Hessian's Kronecker approximation
    A (x) B, A the mean softmax covariance of the current probabilities (K x K), B the features'
    second moment ((K+1) x (K+1)): inverted through two small eigendecompositions, it halves the
    products needed on Dirichlet calibration's correlated log-probability features, and scipy's
    trust-region Newton-CG takes no preconditioner."""
    k = problem.k
    b = problem.xt.T @ problem.xt / problem.n
    wb, qb = np.linalg.eigh(b)
    wb = np.maximum(wb, 1e-10 * wb.max())
    # The intercept penalty adds u u' to every class's block (u = sqrt(2 mu) g); on log-probability
    # features g's shift -m / sigma is large, and left out of the preconditioner this term took
    # Dirichlet calibration three times the products. It is inverted exactly by Sherman-Morrison.
    u = np.sqrt(2.0 * problem.mu) * problem.g[0]
    bu = ((u @ qb) / wb) @ qb.T  # B^-1 u
    ubu = float(u @ bu)
    v = problem.start.astype(np.float64).copy()
    loss, grad = problem.loss_grad(v)
    products = 0
    for _ in range(NEWTON_MAXITER):
        gnorm = float(np.sqrt(np.sum(grad * grad)))
        if gnorm <= CG_GTOL or products >= CG_MAXITER:
            break
        p, _, _ = problem.probs_loss(v)
        a = (np.diag(p.sum(axis=0)) - p.T @ p) / problem.n
        a[np.diag_indices(k)] += 2.0 * problem.lam + NEWTON_RIDGE
        wa, qa = np.linalg.eigh(a)
        wa = np.maximum(wa, 1e-10 * max(float(wa.max()), NEWTON_RIDGE))
        scale = 1.0 / (wa[:, None] * wb[None, :])

        def precondition(r):
            x = ((qa.T @ r @ qb) * scale) @ qb.T  # (lambda_a B)^-1 y_a per rotated class a
            x -= np.outer((x @ u) / (wa + ubu), bu)  # (lambda_a B + u u')^-1 y_a
            return qa @ x

        step, residual = np.zeros_like(v), grad.copy()
        z = precondition(residual)
        direction, rz = z.copy(), float(np.sum(residual * z))
        forcing = min(0.5, np.sqrt(gnorm)) * gnorm
        while products < CG_MAXITER:
            hd = problem.hessian_vector(p, direction)
            products += 1
            alpha = rz / float(np.sum(direction * hd))
            step += alpha * direction
            residual -= alpha * hd
            if float(np.sqrt(np.sum(residual * residual))) <= forcing:
                break
            z = precondition(residual)
            rz, rz_old = float(np.sum(residual * z)), rz
            direction = z + (rz / rz_old) * direction
        decrement = float(np.sum(grad * step))
        if decrement / 2.0 <= NEWTON_TOL:
            break
        v, loss, grad = _backtrack(problem, v, step, loss, decrement)
    return v


class VectorScaling(_Affine):
    """softmax(a * z + b), a and b per class (Guo et al. 2017); NLL plus mu / K * sum of squared b."""

    name = "vector"
    diagonal = True

    def __init__(self, mu: float = VECTOR_MU):
        super().__init__(0.0, mu)


class MatrixScaling(_Affine):
    """softmax(W z + b) with ODIR (Kull et al. 2019)."""

    name = "matrix"

    def __init__(self, lam: float = MATRIX_ODIR, mu: float = MATRIX_ODIR):
        super().__init__(lam, mu)


class DirichletCalibration(_Affine):
    """softmax(W log p + b), p = softmax(z), with ODIR (Kull et al. 2019)."""

    name = "dirichlet"
    log_probs = True

    def __init__(self, lam: float = DIRICHLET_ODIR, mu: float = DIRICHLET_ODIR):
        super().__init__(lam, mu)


def _renormalise(q: np.ndarray) -> np.ndarray:
    """One-vs-rest outputs as distributions: rows divided by their sums; a row whose every class
    was mapped to 0 becomes uniform (it carries no information)."""
    sums = q.sum(axis=1, keepdims=True)
    empty = sums[:, 0] <= 0
    if empty.any():
        q[empty] = 1.0
        sums[empty] = q.shape[1]
    q /= sums
    return q


class HistogramBinning(Calibrator):
    """One-vs-rest histogram binning (Zadrozny & Elkan 2001): per class, p_k in equal-width bins
    (lo, hi] of [0, 1] mapped to the bin's frequency of that class on the validation split (an
    empty bin to its centre), then rows renormalised."""

    name = "histogram"
    keeps_top1 = False

    def __init__(self, n_bins: int = HISTOGRAM_BINS):
        if int(n_bins) != n_bins or n_bins < 1:
            raise UserError(f"histogram bins must be a positive integer, got {n_bins!r}")
        self.n_bins = int(n_bins)

    def _bin_index(self, p: np.ndarray) -> np.ndarray:
        # (lo, hi] with the panel's edges: a value on an edge goes to the lower bin, 0 to the first.
        edges = np.linspace(0.0, 1.0, self.n_bins + 1)
        return np.clip(np.searchsorted(edges, p, side="left") - 1, 0, self.n_bins - 1)

    def _fit(self, z, y):
        p = softmax(z)
        n, k = p.shape
        b = self.n_bins
        flat = self._bin_index(p) + (np.arange(k) * b)[None, :]
        counts = np.bincount(flat.ravel(), minlength=k * b)
        hits = np.bincount(flat[np.arange(n), y], minlength=k * b)
        centres = (np.arange(b) + 0.5) / b
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(counts > 0, hits / np.maximum(counts, 1), np.tile(centres, k))
        self.values = values.reshape(k, b)

    def _probs(self, z):
        p = softmax(z)
        q = self.values[np.arange(p.shape[1])[None, :], self._bin_index(p)]
        return _renormalise(q)


class IsotonicCalibration(Calibrator):
    """One-vs-rest isotonic regression (Zadrozny & Elkan 2002): per class a non-decreasing step
    function of p_k fitted to 1[y = k] by least squares (scikit-learn's solver), values in [0, 1],
    inputs outside the fitted range clipped to it, then rows renormalised."""

    name = "isotonic"
    keeps_top1 = False

    def _fit(self, z, y):
        from sklearn.isotonic import isotonic_regression

        p = softmax(z)
        self.knots = []
        for k in range(p.shape[1]):
            # Equal inputs are pooled first (as IsotonicRegression does): one mean target per
            # value, sorted by value; one sort (np.unique's) serves both.
            values, inverse, counts = np.unique(p[:, k], return_inverse=True, return_counts=True)
            sums = np.bincount(inverse, weights=(y == k).astype(np.float64), minlength=values.shape[0])
            fitted = isotonic_regression(sums / counts, sample_weight=counts.astype(np.float64),
                                         y_min=0.0, y_max=1.0, increasing=True)
            self.knots.append((values, fitted))

    def _probs(self, z):
        p = softmax(z)
        q = np.empty_like(p)
        for k, (values, fitted) in enumerate(self.knots):
            q[:, k] = np.interp(p[:, k], values, fitted)  # linear between knots, clipped outside
        return _renormalise(q)


class EnsembleTemperatureScaling(Calibrator):
    """Ensemble temperature scaling (Zhang et al. 2020): w1 softmax(z / T) + w2 softmax(z) + w3 / K,
    T by the NLL temperature fit, the weights on the simplex minimising the Brier score (solved
    exactly: a 3-variable quadratic programme, every face of the simplex tried). Keeps the top-1
    prediction whenever w1 + w2 > 0."""

    name = "ets"
    keeps_top1 = True

    def _parts(self, z):
        k = z.shape[1]
        return softmax(z, self.temperature), softmax(z), np.full_like(z, 1.0 / k)

    def _fit(self, z, y):
        self.temperature = fit_temperature(z, y, "nll")
        p0, p1, _ = self._parts(z)
        n, k = z.shape
        rows = np.arange(n)
        # Brier(w) = w' A w - 2 c' w + 1 (mean over rows of the squared distance to the one-hot
        # label); the uniform part has <u, p> = 1/K with any distribution p.
        a01 = float(np.einsum("ij,ij->", p0, p1)) / n
        a = np.array([[float(np.einsum("ij,ij->", p0, p0)) / n, a01, 1.0 / k],
                      [a01, float(np.einsum("ij,ij->", p1, p1)) / n, 1.0 / k],
                      [1.0 / k, 1.0 / k, 1.0 / k]])
        c = np.array([p0[rows, y].mean(), p1[rows, y].mean(), 1.0 / k])
        self.weights = _simplex_qp(a, c)

    def _probs(self, z):
        p0, p1, u = self._parts(z)
        w = self.weights
        return w[0] * p0 + w[1] * p1 + w[2] * u

    def params(self):
        return {"temperature": self.temperature, "weights": [float(v) for v in self.weights]}


def _simplex_qp(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """argmin of w' A w - 2 c' w over the probability simplex (A positive semi-definite), by the
    KKT system of every face; ties go to the first face (the largest support, then w1 first)."""
    m = a.shape[0]
    best, best_value = None, np.inf
    faces = sorted((tuple(i for i in range(m) if mask >> i & 1) for mask in range(1, 2 ** m)),
                   key=lambda s: (-len(s), s))
    for face in faces:
        s = list(face)
        kkt = np.zeros((len(s) + 1, len(s) + 1))
        kkt[:-1, :-1] = 2.0 * a[np.ix_(s, s)]
        kkt[:-1, -1] = kkt[-1, :-1] = 1.0
        rhs = np.append(2.0 * c[s], 1.0)
        solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:-1]  # minimum norm where singular
        if solution.min() < -1e-12:
            continue
        w = np.zeros(m)
        w[s] = np.clip(solution, 0.0, None)
        w /= w.sum()
        value = float(w @ a @ w - 2.0 * c @ w)
        if value < best_value - 1e-15:
            best, best_value = w, value
    return best


CALIBRATORS: dict[str, type[Calibrator]] = {
    cls.name: cls
    for cls in (TemperatureScaling, VectorScaling, MatrixScaling, DirichletCalibration, HistogramBinning,
                IsotonicCalibration, EnsembleTemperatureScaling)
}
assert tuple(CALIBRATORS) == CALIBRATOR_NAMES  # one list of names (calnas.calibrator_columns)


def make_calibrator(name: str, **options) -> Calibrator:
    """A new, unfitted calibrator by name (options: ``method`` for temperature, ``lam``/``mu`` for
    matrix and dirichlet, ``n_bins`` for histogram)."""
    try:
        cls = CALIBRATORS[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown calibrator {name!r}; expected one of {', '.join(CALIBRATOR_NAMES)}") from None
    try:
        return cls(**options)
    except TypeError as exc:
        raise UserError(f"calibrator {name}: {exc}") from None
