"""The TFX pipeline that trains TowerGraph's model, its config, data ingestion and the CLI."""

import trainer  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
