"""Runs the pipeline locally with LocalDagRunner; also the file the `tfx` CLI takes:

    tfx pipeline create --engine=local --pipeline_path=pipeline/local_runner.py
    tfx run create --engine=local --pipeline_name=towergraph

Settings come from the YAML file named by $TOWERGRAPH_CONFIG (default: configs/local.yaml
beside this package), relative paths in it being relative to the working directory.
"""

import os
from pathlib import Path
from typing import Optional

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
from tfx import v1 as tfx

from pipeline.config import PipelineConfig, load_config
from pipeline.definition import create_pipeline, local_beam_args

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "local.yaml"


def local_pipeline(config: PipelineConfig, enable_cache: bool = True,
                   until: Optional[str] = None) -> tfx.dsl.Pipeline:
    """The pipeline with the local Beam settings (up to and including `until`, if given)."""
    return create_pipeline(config, beam_pipeline_args=local_beam_args(config),
                           enable_cache=enable_cache, until=until,
                           item_catalog_beam_args=local_beam_args(config, [config.items_file]))


def run_pipeline(pipeline: tfx.dsl.Pipeline) -> None:
    """Runs `pipeline` in this process with LocalDagRunner, component after component."""
    tfx.orchestration.LocalDagRunner().run(pipeline)


def run(config: PipelineConfig, enable_cache: bool = True, until: Optional[str] = None) -> None:
    """Runs the pipeline (up to and including component `until`, if given) in this process."""
    run_pipeline(local_pipeline(config, enable_cache=enable_cache, until=until))


if __name__ == "__main__":
    run(load_config(os.environ.get("TOWERGRAPH_CONFIG", str(DEFAULT_CONFIG))))
