"""The live evaluator a search asks for: the one door from the façade (:mod:`calnas.api`) into
live training, imported only when ``live`` is given. Every live input is checked here, in the
calling process, before a study or a worker exists."""

from __future__ import annotations

from calnas.checks import check_dedupe
from calnas.errors import UserError
from calnas.live.config import LiveConfig, live_columns
from calnas.spaces import TSS, get_space


def live_spec(objectives, constraints=None):
    """The objective spec of a live search, resolved against the live record's columns."""
    from calnas import objectives as objectives_module

    return objectives_module.parse(objectives, live_columns("live training"), constraints)


def live_evaluator(config, objectives, constraints, dedupe: str | None, *, workers: int = 1):
    """(evaluator, spec) for a live search: a :class:`~calnas.live.evaluator.LiveEvaluator`, or
    with ``config.recipes`` a :class:`~calnas.live.joint.JointLiveEvaluator`."""
    if not isinstance(config, LiveConfig):
        raise UserError(f"live must be a calnas.LiveConfig (e.g. calnas.LiveConfig(dataset='digits')), got {config!r}")
    space = get_space(config.space)
    dedupe = check_dedupe(dedupe or ("iso" if space is TSS else "arch"))
    spec = live_spec(objectives, constraints)
    if config.recipes is not None:
        from calnas.live.joint import JointLiveEvaluator

        return JointLiveEvaluator(config, spec, dedupe, pin_threads=workers > 1), spec
    from calnas.live.evaluator import LiveEvaluator

    return LiveEvaluator(config, spec, dedupe, pin_threads=workers > 1), spec
