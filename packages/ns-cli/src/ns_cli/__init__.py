"""ns_cli: the `ns` command line (Typer). Commands only parse, call ns_train/ns_data, and print."""
