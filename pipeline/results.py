"""What the last local run did, read back from its ML Metadata store.

The run itself only logs; a user wants to see, at the end, which components ran or came from
the cache, the gate's verdict with its numbers, and where the model was pushed.
"""

import dataclasses
import json
import os
from typing import Dict, List, Optional

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from pipeline.config import PipelineConfig
from pipeline.gate import METRICS_FILE

_STATE_NAMES = {value: name for name, value in
                metadata_store_pb2.Execution.State.items()}


@dataclasses.dataclass
class RunSummary:
    components: Dict[str, str]          # component -> COMPLETE | CACHED | FAILED | ...
    metrics: Optional[dict]             # the gate's metrics.json
    pushed: bool
    pushed_path: Optional[str]

    def describe(self, components: bool = True) -> str:
        """The summary's lines; `components` false leaves out the line of component states
        (`towergraph run` has shown one line per component already)."""
        lines = []
        if components:
            lines.append("components: " + ", ".join(f"{name} {state}"
                                                    for name, state in self.components.items()))
        if self.metrics:
            for who in ("model", "popularity"):
                numbers = ", ".join(f"{name} {value:.4f}"
                                    for name, value in self.metrics[who].items())
                lines.append(f"{who:>10}: {numbers}")
            lines.append(f"gate: {self.metrics['gate']}: "
                         f"{'blessed' if self.metrics['blessed'] else 'NOT blessed'}")
        lines.append(f"pushed: {self.pushed_path}" if self.pushed
                     else "pushed: nothing (the model did not pass the gate)")
        return "\n".join(lines)


def _store(config: PipelineConfig) -> metadata_store.MetadataStore:
    return metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(config.metadata))


def _latest_run_executions(store, config: PipelineConfig) -> List:
    runs = [context for context in store.get_contexts_by_type("pipeline_run")
            if context.name.startswith(config.pipeline_name)
            or any(parent.name == config.pipeline_name
                   for parent in store.get_parent_contexts_by_context(context.id))]
    if not runs:
        raise RuntimeError(f"no run of pipeline {config.pipeline_name!r} in {config.metadata}")
    latest = max(runs, key=lambda context: context.create_time_since_epoch)
    return sorted(store.get_executions_by_context(latest.id), key=lambda e: e.id)


def _outputs(store, execution_ids: List[int], type_name: str) -> List:
    events = store.get_events_by_execution_ids(execution_ids)
    ids = [event.artifact_id for event in events
           if event.type in (metadata_store_pb2.Event.OUTPUT,
                             metadata_store_pb2.Event.DECLARED_OUTPUT)]
    return [artifact for artifact in store.get_artifacts_by_id(ids)
            if store.get_artifact_types_by_id([artifact.type_id])[0].name == type_name]


def _component_name(store, execution) -> str:
    return store.get_execution_types_by_id([execution.type_id])[0].name.rsplit(".", 1)[-1]


def component_seconds(config: PipelineConfig) -> Dict[str, float]:
    """Seconds each component of the latest run took (cached ones: the cache look-up)."""
    store = _store(config)
    return {_component_name(store, execution):
            (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1e3
            for execution in _latest_run_executions(store, config)}


def output_uri(config: PipelineConfig, component: str, key: str) -> str:
    """The URI of output `key` (e.g. "transform_graph") of `component` in the latest run."""
    store = _store(config)
    for execution in _latest_run_executions(store, config):
        if _component_name(store, execution) != component:
            continue
        for event in store.get_events_by_execution_ids([execution.id]):
            if (event.type in (metadata_store_pb2.Event.OUTPUT,
                               metadata_store_pb2.Event.DECLARED_OUTPUT)
                    and event.path.steps and event.path.steps[0].key == key):
                return store.get_artifacts_by_id([event.artifact_id])[0].uri
    raise RuntimeError(f"the latest run of {config.pipeline_name!r} has no output {key!r} "
                       f"of {component}")


def latest_run_summary(config: PipelineConfig) -> RunSummary:
    store = _store(config)
    executions = _latest_run_executions(store, config)
    types = {t.id: t.name for t in
             store.get_execution_types_by_id([e.type_id for e in executions])}
    components = {types[e.type_id].rsplit(".", 1)[-1]: _STATE_NAMES[e.last_known_state]
                  for e in executions}
    ids = [e.id for e in executions]

    metrics = None
    evaluations = _outputs(store, ids, "ModelEvaluation")
    if evaluations:
        with tf.io.gfile.GFile(os.path.join(evaluations[-1].uri, METRICS_FILE)) as handle:
            metrics = json.load(handle)

    pushed_path = None
    for pushed_model in _outputs(store, ids, "PushedModel"):
        if pushed_model.custom_properties["pushed"].int_value == 1:
            pushed_path = pushed_model.custom_properties["pushed_destination"].string_value
    return RunSummary(components, metrics, pushed_path is not None, pushed_path)
