"""One module per `ns` command; each exposes `register(app)`."""
