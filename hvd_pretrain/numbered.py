"""Ordering names that hold numbers by the numbers' values, not their digits.

Sorting names as strings puts `log.10` before `log.9`, `shard-10` before `shard-2` and
`ckpt-100` before `ckpt-99` (unless every number has the same zero padding). `numbered_key`
compares each run of digits as an integer and the text between them as text, so
`part-2 < part-10`, and zero-padded names keep their usual order.
"""

import re

_DIGITS = re.compile(r"(\d+)")


def numbered_key(name):
    """Sort key of `name` (str): text runs compare as text, digit runs as integers; ties
    (`a01` vs `a1`) are broken by the name itself, so the order is total."""
    parts = _DIGITS.split(str(name))
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], str(name)


def numbered_sorted(names):
    """`names` sorted by `numbered_key`."""
    return sorted(names, key=numbered_key)
