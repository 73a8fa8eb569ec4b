"""The one error type ns_data raises for bad input; the CLI turns it into a one-line message."""


class DataError(Exception):
    """A path, shard set or option that cannot be used, with the fix in the message."""
