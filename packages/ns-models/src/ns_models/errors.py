"""The one error type ns_models raises for bad input; the CLI turns it into a one-line message."""


class ModelError(Exception):
    """A model name, checkpoint or option that cannot be used, with the fix in the message."""
