"""The DALI backends: pipelines (GPU or CPU), the runner that feeds them, RandAugment's op suite."""
