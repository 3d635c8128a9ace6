"""calnas."""
