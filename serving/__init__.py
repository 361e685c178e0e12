"""Serving: the TF Serving client, the multi-hop graph builder and the local stand-in server."""

import trainer  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
