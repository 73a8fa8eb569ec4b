"""Pseudo labels: the per-shard store, filtering and class balancing (numba kernels)."""
