"""Evaluation: the greedy / best-of-N loop, correctness-specificity metrics, figures, reports."""
