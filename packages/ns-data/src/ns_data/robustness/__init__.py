"""ImageNet-C/-P-style corrupted and perturbed copies of an evaluation set."""
