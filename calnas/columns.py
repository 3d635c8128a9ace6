"""Column names that more than one part of calnas gives a meaning to.

The metric panel's columns live with the panel (:data:`calnas.metrics.PANEL_COLUMNS`) and the
objective names in :mod:`calnas.objectives.catalog`; these are the others.
"""

from __future__ import annotations

# Network cost columns (millions), known before anything is evaluated (calnas.cost, the shipped meta).
COST_COLUMNS = ("params", "flops")
# What identifies a row of a Table's frame rather than measures it (the index is the frame's index).
IDENTITY_COLUMNS = ("arch", "iso", "evaluated_index")
# The first columns of a table file calnas builds (calnas table build, a live search's table).
FILE_ID_COLUMNS = ("index", "config", "arch", "iso")
# Columns that name the architecture index in a published file (config) or a calnas one (index).
INDEX_COLUMNS = ("config", "index")
