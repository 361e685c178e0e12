"""The Vertex AI Model Registry step: each pushed model becomes a new version of one model.

On Vertex AI Pipelines only (pipeline/vertex_runner.py adds it after the Pusher): when the
Pusher pushed the blessed model to <serving_dir>/<model_name>/<version>/, that folder is
uploaded (aiplatform.Model.upload) as a new version of the registered model with the
configured display name -- the first upload creates the model, later ones pass it as
parent_model -- served by a TF Serving prediction image, with the gate's metrics as labels
(recall@10 0.18123 -> recall_at_10: 0_1812) and the pushed version. The new version becomes
the model's default. A model the gate did not bless was not pushed and is not registered.

The step's output, a PushedModel artifact, records where the model went: pushed (1 or 0),
pushed_destination (projects/P/locations/R/models/ID@VERSION), registry_model,
registry_version_id, registry_labels (JSON) and registry_console (the console page); or
registry_skipped with the reason. pipeline.vertex.aiplatform_api() hands out the SDK.
"""

import json
import logging
import os
import re
from typing import Any, Dict, Mapping, Optional

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types.standard_artifacts import ModelEvaluation, PushedModel

from pipeline import vertex
from pipeline.gate import METRICS_FILE

# Vertex AI labels: keys and values of lowercase letters, digits, _ and -, at most 63
# characters; a key starts with a letter.
_LABEL_CHARS = 63
_NOT_IN_LABEL = re.compile(r"[^a-z0-9_-]")


class RegistryError(RuntimeError):
    """Vertex AI refused or failed a registry call: says what, for which model, where."""


def label(text: str) -> str:
    """`text` as a Vertex AI label value ("recall@10" -> "recall_at_10", "0.1812" -> "0_1812")."""
    return _NOT_IN_LABEL.sub("_", text.lower().replace("@", "_at_"))[:_LABEL_CHARS]


def metric_labels(metrics: Mapping[str, Any]) -> Dict[str, str]:
    """Labels of the gate's metrics of the model: {"recall@10": 0.18123} ->
    {"recall_at_10": "0_1812"} (four decimals)."""
    labels = {}
    for name, value in metrics.items():
        key = label(name)
        if not re.match(r"[a-z]", key):
            key = label(f"m_{key}")
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        labels[key] = label(shown)
    return labels


def _filter_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _hint(error: Exception, project: str, region: str) -> str:
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth
    if isinstance(error, (api.PermissionDenied, api.Unauthenticated, auth.GoogleAuthError)):
        return (f" The service account the run acts as needs roles/aiplatform.user in project "
                f"{project}, and Vertex AI's service agent must be able to read the model "
                f"folder.")
    if isinstance(error, api.NotFound):
        return (f" Check that the Vertex AI API is enabled in project {project}, that region "
                f"{region} offers it, and that the model folder exists.")
    if isinstance(error, api.ResourceExhausted):
        return f" A Vertex AI quota of project {project}, region {region} is used up."
    return ""


def register(project: str, region: str, display_name: str, serving_image: str,
             artifact_uri: str, labels: Dict[str, str], description: str):
    """Uploads `artifact_uri` as the new default version of the model named `display_name`
    (created if there is none); returns the SDK's Model. Raises RegistryError."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth
    aiplatform = vertex.aiplatform_api()
    where = f"model {display_name!r} in project {project}, region {region}"
    doing = f"look up {where}"
    try:
        aiplatform.init(project=project, location=region)
        existing = aiplatform.Model.list(filter=f'display_name="{_filter_value(display_name)}"',
                                         order_by="create_time", project=project,
                                         location=region)
        parent: Optional[str] = existing[0].resource_name if existing else None
        if len(existing) > 1:
            logging.warning("model registry: %d models are named %r; adding to the oldest, %s",
                            len(existing), display_name, parent)
        doing = (f"upload {artifact_uri} as a new version of {where}" if parent else
                 f"create {where} from {artifact_uri}")
        return aiplatform.Model.upload(
            display_name=display_name, parent_model=parent, is_default_version=True,
            artifact_uri=artifact_uri, serving_container_image_uri=serving_image,
            labels=labels, description=description, version_description=description,
            project=project, location=region)
    except (api.GoogleAPIError, auth.GoogleAuthError) as error:
        raise RegistryError(f"Vertex AI Model Registry: could not {doing}: "
                            f"{type(error).__name__}: {error}."
                            + _hint(error, project, region)) from error


@tfx.dsl.components.component
def ModelRegistry(  # TFX names components like classes
        pushed_model: tfx.dsl.components.InputArtifact[PushedModel],
        evaluation: tfx.dsl.components.InputArtifact[ModelEvaluation],
        registered: tfx.dsl.components.OutputArtifact[PushedModel],
        project: tfx.dsl.components.Parameter[str],
        region: tfx.dsl.components.Parameter[str],
        display_name: tfx.dsl.components.Parameter[str],
        serving_image: tfx.dsl.components.Parameter[str],
) -> None:
    """Uploads the pushed model to the Vertex AI Model Registry (none if it was not pushed).

    pushed_model: the Pusher's output (custom properties pushed, pushed_destination,
      pushed_version); evaluation: the RetrievalGate's (metrics.json: the labels).
    serving_image: the prediction container of the new version.
    """
    if not pushed_model.get_int_custom_property("pushed"):
        reason = "the model was not pushed (the gate did not bless it): nothing registered"
        logging.info("model registry: %s", reason)
        registered.set_int_custom_property("pushed", 0)
        registered.set_string_custom_property("registry_skipped", reason)
        return
    destination = pushed_model.get_string_custom_property("pushed_destination")
    version = pushed_model.get_string_custom_property("pushed_version")
    with tf.io.gfile.GFile(os.path.join(evaluation.uri, METRICS_FILE)) as handle:
        metrics = json.load(handle)["model"]
    labels = metric_labels(metrics)
    if version:
        labels["pushed_version"] = label(version)
    shown = ", ".join(f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}"
                      for name, value in metrics.items())
    model = register(project, region, display_name, serving_image, artifact_uri=destination,
                     labels=labels, description=f"TowerGraph retrieval model pushed to "
                                                f"{destination}; gate: {shown}")
    model_id = model.resource_name.rsplit("/", 1)[-1]
    registered.set_int_custom_property("pushed", 1)
    registered.set_string_custom_property("pushed_destination", model.versioned_resource_name)
    registered.set_string_custom_property("registry_model", model.resource_name)
    registered.set_string_custom_property("registry_version_id", str(model.version_id))
    registered.set_string_custom_property("registry_labels", json.dumps(labels, sort_keys=True))
    registered.set_string_custom_property(
        "registry_console", f"https://console.cloud.google.com/vertex-ai/models/locations/"
                            f"{region}/models/{model_id}/versions/{model.version_id}"
                            f"?project={project}")
    logging.info("model registry: %s is version %s of %s (%s), labels %s", destination,
                 model.version_id, display_name, model.resource_name, labels)
