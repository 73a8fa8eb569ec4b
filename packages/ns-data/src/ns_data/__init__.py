"""ns_data."""
