"""The error type the engine raises for bad input; the CLI turns it into one line and exit 1."""


class TrainError(Exception):
    """A configuration, run directory or combination of inputs that cannot work, with the fix."""
