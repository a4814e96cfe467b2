"""hvd-pretrain: pre-train BERT, ALBERT and ELECTRA encoders with Horovod.

The flow through the package: vocab -> data -> models -> train -> supervisor -> telemetry.
"""

import os

# Horovod's TensorFlow helpers need the Keras 2 API (tf-keras); set before TensorFlow loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
