"""The one exception the data tools raise for bad input."""


class DataError(Exception):
    """Bad data input: a one-line message naming the file, flag or value and what to do."""
