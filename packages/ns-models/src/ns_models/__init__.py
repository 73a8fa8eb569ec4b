"""ns_models."""
