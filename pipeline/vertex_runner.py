"""Compiles the pipeline of pipeline/definition.py for Vertex AI Pipelines (KubeflowV2DagRunner
writes a PipelineJob spec as JSON; nothing here talks to Google Cloud). Also the file the `tfx`
CLI takes:

    tfx pipeline compile --engine=vertex --pipeline_path=pipeline/vertex_runner.py

Settings come from the YAML file named by $TOWERGRAPH_VERTEX_CONFIG (default:
configs/vertex.yaml) and the environment (pipeline/vertex_config.py). On Vertex AI every step
runs the pipeline image, the Trainer as a Vertex AI custom job, the Beam components on Dataflow
or Beam's DirectRunner, the Pusher writes to the Cloud Storage serving path, and ModelRegistry
(registry.enabled) uploads each pushed model to the Vertex AI Model Registry.
"""

import os
import sys
from typing import Any, Dict, Optional

from kfp.pipeline_spec import pipeline_spec_pb2
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
from tfx import v1 as tfx

from pipeline.definition import create_pipeline
from pipeline.vertex_config import VertexConfig, VertexConfigError, load_vertex_config

_RESOURCES = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec


def trainer_custom_config(config: VertexConfig) -> Dict[str, Any]:
    """What makes tfx.extensions.google_cloud_ai_platform.Trainer a Vertex AI custom job."""
    cloud = tfx.extensions.google_cloud_ai_platform
    return {cloud.ENABLE_VERTEX_KEY: True,
            cloud.VERTEX_REGION_KEY: config.region,
            cloud.TRAINING_ARGS_KEY: {"project": config.project,
                                      "job_spec": config.trainer_job_spec()}}


def build_pipeline(config: VertexConfig) -> tfx.dsl.Pipeline:
    pipeline = create_pipeline(config.pipeline, beam_pipeline_args=config.beam_pipeline_args(),
                               enable_cache=config.enable_caching,
                               cloud_training=trainer_custom_config(config),
                               model_registry=config.registry_parameters())
    if config.steps.cpu_limit or config.steps.memory_limit:
        for component in pipeline.components:
            # The Trainer's step only waits for the custom job; a resolver runs in Vertex.
            if component.id != "Trainer" and hasattr(component, "with_platform_config"):
                component.with_platform_config(_RESOURCES(
                    cpu_limit=config.steps.cpu_limit, memory_limit=config.steps.memory_limit))
    return pipeline


def compile_pipeline(config: VertexConfig, output: Optional[str] = None) -> str:
    """Writes the Vertex AI pipeline spec (JSON) to `output` (default: compiled_path)."""
    output = os.path.abspath(output or config.compiled_path)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=config.image),
        output_dir=os.path.dirname(output), output_filename=os.path.basename(output))
    runner.run(build_pipeline(config))
    return output


if __name__ == "__main__":
    try:
        loaded = load_vertex_config()
    except VertexConfigError as error:
        sys.exit(f"error: {error}")
    # `tfx pipeline create` redirects the output to $VERTEX_HOME; `compile` keeps it.
    compile_pipeline(loaded)
