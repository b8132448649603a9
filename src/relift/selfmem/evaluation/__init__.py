"""Evaluation: the comparison table of every row (paired bootstrap, bands) and its report."""
