"""ns_cli."""
