"""Neighbourhoods of certainty: how much of the space around training points a network is
almost certain about.

Chidambaram & Ge (ICLR 2024, "On the limitations of temperature scaling for distributions with
overlaps") show that networks trained with cross-entropy are almost certain (confidence near 1)
in whole neighbourhoods of their training points, which temperature scaling cannot undo where
classes overlap. :func:`certainty_neighbourhoods` measures that on a trained network:

* **Points**: the first ``points`` images of the training split (the split is already a seeded
  random draw), as the network sees them (normalised, not augmented).
* **Scale**: for each of those points the Euclidean distance, in the normalised input space, to
  its nearest other image of the whole training split; ``d_nn`` is their median.
* **Perturbations**: for each point, ``directions`` directions uniform on the unit sphere of the
  input space (normalised Gaussian vectors) and, for each, a radius uniform in ``[0, r]`` with
  ``r = radius * d_nn`` (``relative=True``, the default) or ``r = radius``. Radii uniform in
  ``[0, r]``, not uniform in the ball's volume: in these dimensions (192 for digits) a draw
  uniform in the ball lies almost surely near its surface, so every scale up to ``r`` is
  weighted alike instead.
* **Results**: the fraction of perturbed inputs whose maximum softmax probability exceeds
  :data:`CONFIDENCE_THRESHOLD` (0.99) and their mean maximum softmax probability; the same two
  at the points themselves (radius 0), and the fraction of perturbed inputs whose predicted
  class is the one predicted at their point.

The default radius is half the median nearest-neighbour distance: a ball that, for a typical
point, reaches halfway to the nearest other training image, so it holds no other training image
and is the region a network could claim for that point alone; relative, so that one number means
the same on digits (192 dimensions) as on CIFAR (3,072) and under any normalisation.

Random numbers come from a ``numpy.random.Generator`` seeded with ``seed``; no global RNG is
used. The model is evaluated in eval mode without gradients and its mode is restored.
"""

from __future__ import annotations

import numpy as np

CONFIDENCE_THRESHOLD = 0.99
CERTAINTY_POINTS = 100       # training points (the first of the split)
CERTAINTY_DIRECTIONS = 32    # random directions per point
CERTAINTY_RADIUS = 0.5       # relative: times the median nearest-neighbour distance
CERTAINTY_SEED = 0


def nearest_neighbour_distances(points: np.ndarray, pool: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """For each of ``points`` (the first ``len(points)`` rows of ``pool``), the Euclidean distance
    to the nearest *other* row of ``pool`` (flattened); inf when ``pool`` has no other row."""
    a = points.reshape(len(points), -1).astype(np.float64)
    b = pool.reshape(len(pool), -1).astype(np.float64)
    best = np.full(len(a), np.inf)
    a2 = (a ** 2).sum(1)
    for start in range(0, len(b), chunk):
        block = b[start:start + chunk]
        d2 = a2[:, None] + (block ** 2).sum(1)[None, :] - 2.0 * a @ block.T
        own = np.arange(len(a)) - start
        inside = (own >= 0) & (own < len(block))
        d2[np.nonzero(inside)[0], own[inside]] = np.inf  # a point is not its own neighbour
        best = np.minimum(best, d2.min(1))
    return np.sqrt(np.maximum(best, 0.0))


def certainty_neighbourhoods(model, train_x: np.ndarray, *, device, points: int = CERTAINTY_POINTS,
                             directions: int = CERTAINTY_DIRECTIONS, radius: float = CERTAINTY_RADIUS,
                             relative: bool = True, seed: int = CERTAINTY_SEED,
                             threshold: float = CONFIDENCE_THRESHOLD, batch_size: int = 1024) -> dict:
    """The neighbourhood-of-certainty metric of ``model`` around ``train_x`` (see the module)."""
    import torch
    from scipy.special import softmax

    from calnas.live.networks import logits_of

    train_x = np.asarray(train_x, dtype=np.float32)
    if points < 1 or directions < 1:
        raise ValueError(f"points and directions must be at least 1, got {points} and {directions}")
    if not radius >= 0:
        raise ValueError(f"radius must be non-negative, got {radius}")
    n = min(int(points), len(train_x))
    base = train_x[:n]
    nn = nearest_neighbour_distances(base, train_x)
    d_nn = float(np.median(nn))
    r = float(radius) * d_nn if relative else float(radius)
    if not np.isfinite(r):
        raise ValueError("the training split has a single image: no nearest-neighbour distance to scale by")
    rng = np.random.default_rng(seed)
    shape = base.shape[1:]
    dims = int(np.prod(shape))

    was_training = model.training
    model.eval()

    def confidence_and_class(x: np.ndarray):
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(device)
                out.append(logits_of(model, xb).double().cpu().numpy())
        p = softmax(np.concatenate(out), axis=1)
        return p.max(1), p.argmax(1)

    try:
        point_conf, point_class = confidence_and_class(base)
        confs, agree = [], []
        per_chunk = max(1, batch_size // directions)  # points whose perturbations share a forward pass
        for first in range(0, n, per_chunk):
            chunk = []
            for i in range(first, min(first + per_chunk, n)):
                u = rng.standard_normal((directions, dims))
                u /= np.linalg.norm(u, axis=1, keepdims=True)
                t = rng.uniform(0.0, r, size=(directions, 1))
                chunk.append(base[i].reshape(1, dims) + t * u)
            x = np.concatenate(chunk).astype(np.float32).reshape(-1, *shape)
            conf, cls = confidence_and_class(x)
            confs.append(conf)
            agree.append(cls == np.repeat(point_class[first:first + len(chunk)], directions))
    finally:
        model.train(was_training)
    confs = np.concatenate(confs)
    agree = np.concatenate(agree)
    return {"threshold": threshold, "points": n, "directions": int(directions),
            "radius": r, "radius_relative": float(radius) if relative else None,
            "nn_distance_median": d_nn, "seed": int(seed),
            "fraction_certain": float((confs > threshold).mean()),
            "mean_confidence": float(confs.mean()),
            "points_fraction_certain": float((point_conf > threshold).mean()),
            "points_mean_confidence": float(point_conf.mean()),
            "prediction_kept": float(agree.mean())}
