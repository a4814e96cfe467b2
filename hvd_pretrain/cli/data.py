"""hvd-data: the data tools. `hvd-data SUBCOMMAND --help` for each.

Each subcommand lives in its own module, hvd_pretrain.cli.data_<name>, with a
`main(argv)` that parses its own absl flags. Importing this dispatcher costs
nothing: TensorFlow is loaded only by the subcommands that need it.
"""

import importlib
import sys

from hvd_pretrain.cli.entry import entry
from hvd_pretrain.errors import ConfigError

SUBCOMMANDS = {
    "vocab": "train a SentencePiece vocab, or check a WordPiece vocab.txt",
    "create": "documents -> masked pre-training instances -> TFRecord shards + manifest",
    "newwords": "discover new Chinese words for whole-word masking dictionaries",
    "inspect": "print a manifest and a few decoded instances",
}


def usage():
    lines = ["usage: hvd-data SUBCOMMAND [flags]", "", "subcommands:"]
    lines += ["  %-10s %s" % (name, text) for name, text in SUBCOMMANDS.items()]
    return "\n".join(lines)


@entry
def run(argv=None):
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        return 0 if len(argv) >= 2 else 2
    name = argv[1]
    if name not in SUBCOMMANDS:
        raise ConfigError("unknown subcommand %r; choose one of %s" % (name, ", ".join(SUBCOMMANDS)))
    try:
        module = importlib.import_module("hvd_pretrain.cli.data_" + name)
    except ModuleNotFoundError as e:
        if e.name != "hvd_pretrain.cli.data_" + name:
            raise
        raise ConfigError("subcommand %r is not available in this installation" % name) from None
    return module.main(["hvd-data " + name] + argv[2:])


if __name__ == "__main__":
    sys.exit(run())
