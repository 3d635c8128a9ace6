"""Live evaluation: build NATS-Bench networks with xautodl, train or load weights, predict.

This package is the only part of calnas that imports torch and xautodl; everything else
(table search, the CLI's lookups) stays free of them. Entry points:

* :func:`calnas.live.evaluate.evaluate_live` — one architecture, the full metric panel.
* :mod:`calnas.live.build` — many architectures appended to a crash-safe CSV table.
"""
