"""Multi-objective early stopping in a plain Optuna study, with calnas's pruner.

Optuna's own pruners need ``trial.report``, which multi-objective studies refuse
(optuna/optuna#3450). ``calnas.pruners.MultiObjectiveSuccessiveHalving`` keeps each rung's
objective vector in the trial's user attributes and ranks it against the study's other
vectors there (non-dominated sorting, then hypervolume contribution), so the same code works
with any storage and any number of workers.

    python examples/optuna_multiobjective_pruning.py            # in memory
    python examples/optuna_multiobjective_pruning.py --storage sqlite:///mo.db

The "training" here is a small scikit-learn MLP on the digits data, one epoch per
``partial_fit``, scored on a validation split by accuracy (maximised) and 15-bin ECE (minimised).
"""

from __future__ import annotations

import argparse

import numpy as np
import optuna
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from calnas.metrics import ece
from calnas.pruners import MultiObjectiveSuccessiveHalving, trial_progress

MAX_EPOCHS = 27


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--storage", default=None)
    ap.add_argument("--trials", type=int, default=40)
    args = ap.parse_args()

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x / 16.0, y, test_size=0.3, random_state=0, stratify=y)
    directions = ["maximize", "minimize"]
    pruner = MultiObjectiveSuccessiveHalving(directions, min_epochs=1, eta=3, max_epochs=MAX_EPOCHS)

    def objective(trial: optuna.Trial):
        width = trial.suggest_int("width", 4, 128, log=True)
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        model = MLPClassifier(hidden_layer_sizes=(width,), learning_rate_init=lr, random_state=trial.number)
        for epoch in range(1, MAX_EPOCHS + 1):
            model.partial_fit(x_train, y_train, classes=np.arange(10))
            probs = model.predict_proba(x_val)
            values = (float(np.mean(probs.argmax(1) == y_val)), ece(probs, y_val, 15))
            if pruner.report(trial, epoch, values):
                raise optuna.TrialPruned()
        return values

    study = optuna.create_study(directions=directions, storage=args.storage,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=args.trials)
    epochs = 0
    for trial in study.trials:
        progress = trial_progress(trial, MAX_EPOCHS)
        epochs += progress["epochs"] or 0
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    print(f"{len(study.trials)} trials, {len(complete)} trained to {MAX_EPOCHS} epochs, "
          f"{epochs} epochs in all (without pruning: {len(study.trials) * MAX_EPOCHS})")
    for trial in study.best_trials:
        print(f"  front: trial {trial.number} acc {trial.values[0]:.3f} ece {trial.values[1]:.4f} {trial.params}")


if __name__ == "__main__":
    main()
