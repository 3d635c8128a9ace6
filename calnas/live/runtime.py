"""Training in whichever process runs a live evaluator: device, data, threads, and putting back
what training changes globally when that process is the caller's own."""

from __future__ import annotations

import contextlib

import numpy as np


class Runtime:
    """Device, data and thread settings of one process's trainings."""

    def __init__(self, evaluator, splits):
        import torch

        from calnas.live.evaluate import resolve_device

        self.evaluator, self.splits = evaluator, splits
        self.device = resolve_device(evaluator._device_name)
        training = evaluator.training
        # Processes, not threads, parallelise tiny networks (docs/live.md, Throughput): a worker
        # trains on one thread unless the protocol fixes the count.
        self.threads = training.threads or (1 if evaluator._pin else None)
        self.own_process = evaluator.stream > 0
        if self.own_process and self.device.type == "cpu":
            torch.set_num_threads(self.threads or 1)  # a spawned worker's process is calnas's own

    def evaluate(self, arch: str, monitor=None):
        """One training; with an early-stopping ``monitor`` its curve is recorded at the
        protocol's geometric epochs and the monitor's rungs (calnas.live.evaluate)."""
        from calnas.live.curves import geometric_epochs
        from calnas.live.evaluate import evaluate_prepared

        ev = self.evaluator
        curve_epochs = geometric_epochs(ev.training.epochs) if monitor is not None else None
        return evaluate_prepared(arch, ev.space, ev.training, self.splits, device=self.device, seed=ev.seed,
                                 curve_epochs=curve_epochs, monitor=monitor)

    @contextlib.contextmanager
    def scope(self):
        """In the caller's own process, put back what training changes globally (the torch thread
        count, torch's and numpy's global random state) once it is done."""
        if self.own_process:
            yield
            return
        import torch

        threads = torch.get_num_threads()
        numpy_state = np.random.get_state()
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                if self.threads and self.device.type == "cpu":
                    torch.set_num_threads(self.threads)
                yield
        finally:
            torch.set_num_threads(threads)
            np.random.set_state(numpy_state)
