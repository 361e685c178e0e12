"""TowerGraph's top layer: the `towergraph` command tree, the constants every layer shares, and
TensorFlow's environment set-up.

It sits above `pipeline/`, `trainer/`, `serving/` and `ui/`: the command line calls them, never the
other way round. The lower layers import only the two leaf modules here, `constants` and
`tf_env`, which import nothing of the project.
"""
