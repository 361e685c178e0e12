"""TensorFlow's environment for TowerGraph: import this module before `import tensorflow`.

TensorFlow Recommenders 0.7 needs Keras 2. TensorFlow 2.16 picks Keras 2 (tf-keras) over Keras 3
only when TF_USE_LEGACY_KERAS is set before `tf.keras` is first touched, so every module that
imports TensorFlow imports this one just before it:

    import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
    import tensorflow as tf

TensorFlow's C++ start-up chatter (no CUDA, no TensorRT, CPU flags) buries the commands' own
output; warnings and errors still show. Set TF_CPP_MIN_LOG_LEVEL=0 to see everything.
"""

import os

LEGACY_KERAS = "TF_USE_LEGACY_KERAS"

os.environ[LEGACY_KERAS] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

