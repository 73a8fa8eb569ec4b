"""ns_data: shards, loaders, pseudo labels, filtering and balancing for Noisy Student."""

from importlib.metadata import version

__version__ = version("ns-data")
