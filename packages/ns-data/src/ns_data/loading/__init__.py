"""Loaders: views, rank sampling, host-side draws and the backends (DALI GPU/CPU, plain PyTorch)."""
