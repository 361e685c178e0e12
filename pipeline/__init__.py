"""The TFX pipeline that trains TowerGraph's model: its definition, runners, config, gate and data
ingestion. The `towergraph` command line that drives it lives in `towergraph/`."""
