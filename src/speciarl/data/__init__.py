"""Datasets: the synthetic shapes data, the reproduction benchmark, benchmark readers, manifests, the DataModule."""
