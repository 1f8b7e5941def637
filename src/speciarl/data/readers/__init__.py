"""Readers of the benchmarks' on-disk layouts, one module per benchmark, their shared logic in ``layout``."""
