"""Flag parsing shared by the command-line tools (each keeps its own absl FlagValues)."""

import sys

from absl import flags


def parse_flags(define, argv):
    """(FlagValues, exit code or None). --help prints the help and exits 0; a bad flag exits 2."""
    fv = flags.FlagValues()
    define(fv)
    if any(a in ("-h", "--help", "--helpfull", "-help") for a in argv[1:]):
        print((sys.modules[define.__module__].__doc__ or "").strip() + "\n")
        print(fv.get_help())
        return fv, 0
    try:
        fv(list(argv))
    except flags.Error as e:
        print("error: %s (see --help)" % e, file=sys.stderr)
        return fv, 2
    return fv, None
