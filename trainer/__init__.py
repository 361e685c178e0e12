"""TowerGraph's model code: Transform's preprocessing, the TFRS two-tower model, its training and
its export. Importable and testable without TFX; modules that import TensorFlow import
`towergraph.tf_env` first (Keras 2 for TFRS).
"""
