"""ns_train: the Noisy Student engine (train, label, evaluate, iterate)."""

from importlib.metadata import version

__version__ = version("ns-train")
