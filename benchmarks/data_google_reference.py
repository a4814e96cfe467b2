"""Run google-research/bert's create_pretraining_data.py (the `bert-tensorflow` package) under TF2.

The reference script is TF1 code (tf.flags, tf.gfile, tf.python_io). Before it is
imported, `tensorflow` is pointed at `tensorflow.compat.v1`, which still has all
of these. Usage: python benchmarks/data_google_reference.py --input_file=... --output_file=...
--vocab_file=... [its other flags].
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow.compat.v1 as tf1  # noqa: E402

sys.modules["tensorflow"] = tf1

from bert import create_pretraining_data  # noqa: E402

if __name__ == "__main__":
    tf1.app.run(create_pretraining_data.main)
