"""TowerGraph's model code: Transform's preprocessing, the TFRS two-tower model, its export.

TensorFlow Recommenders 0.7 needs Keras 2. TensorFlow 2.16 picks Keras 2 (tf-keras) over Keras 3
only when TF_USE_LEGACY_KERAS is set before `tf.keras` is first touched, so the package sets it
here, and every other TowerGraph package imports this one first.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
# TensorFlow's C++ start-up chatter (no CUDA, no TensorRT, CPU flags) buries the commands'
# own output; warnings and errors still show. Set TF_CPP_MIN_LOG_LEVEL=0 to see everything.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
