"""Objectives for calnas searches: names, directions, computed scores, the spec language.

``parse("acc,ece", table, constraints=["acc>=0.9"])`` resolves a spec against a table once;
everything downstream works with the resulting :class:`Spec`.
"""

from calnas.objectives.spec import (Constraint, Objective, Spec, parse, parse_constraints, resolve_token,
                                    spec_from_description)

__all__ = ["Constraint", "Objective", "Spec", "parse", "parse_constraints", "resolve_token", "spec_from_description"]
