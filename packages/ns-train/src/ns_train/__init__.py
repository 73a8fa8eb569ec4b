"""ns_train."""
