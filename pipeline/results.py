"""What the last local run did, read back from its ML Metadata store.

The run itself only logs; a user wants to see, at the end, which components ran or came from
the cache, how the model was warm-started, the gate's verdict with its numbers (the candidate,
the model in production and popularity), and where the model was pushed.
"""

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from pipeline.config import PipelineConfig
from pipeline.gate import METRICS_FILE
from trainer.run import CATALOG_FILE, WARM_START_FILE, model_uri

_STATE_NAMES = {value: name for name, value in
                metadata_store_pb2.Execution.State.items()}


def _count(number: int) -> str:
    return f"{number:,}"


def _warm_start_line(info: dict, source: Optional[str]) -> str:
    """`warm start: from version 17 (1,623 of 1,650 items and 930 of 943 users carried over;
    27 new items, 13 new users initialised fresh)`, or `none (trained from scratch)`."""
    if not info.get("base_model"):
        return "warm start: none (trained from scratch)"
    kinds = [(noun, info[key]) for key, noun in (("items", "items"), ("users", "users"))
             if isinstance(info.get(key), dict)]
    carried = " and ".join(
        f"{_count(c.get('carried', 0))} of {_count(c.get('carried', 0) + c.get('new', 0))} "
        f"{noun}" for noun, c in kinds)
    details = [f"{carried} carried over"] if carried else []
    new = [f"{_count(c['new'])} new {noun}" for noun, c in kinds if c.get("new")]
    if new:
        details.append(", ".join(new) + " initialised fresh")
    dropped = [f"{_count(c['dropped'])} {noun}" for noun, c in kinds if c.get("dropped")]
    if dropped:
        details.append(" and ".join(dropped) + " of the base model no longer in the data")
    fresh = (info.get("layers") or {}).get("fresh") or []
    if fresh:
        copied = (info.get("layers") or {}).get("copied") or []
        details.append(f"{len(fresh)} of {len(fresh) + len(copied)} layers initialised fresh")
    line = f"warm start: from {source or info['base_model']}"
    return f"{line} ({'; '.join(details)})" if details else line


def _catalog_line(info: dict) -> str:
    """`catalogue: 162 items, 150 trained on, 12 cold placed by their content (12 nobody rated
    yet)`, or, without cold items, `catalogue: 150 items, all trained on`."""
    total, warm = info.get("items", 0), info.get("warm", 0)
    if total == warm:
        return f"catalogue: {_count(total)} items, all trained on"
    parts = [f"{_count(info[key])} {what}" for key, what in
             (("cold_rated", "rated but outside the item vocabulary"),
              ("cold_unrated", "nobody rated yet"))
             if info.get(key)]
    return (f"catalogue: {_count(total)} items, {_count(warm)} trained on, "
            f"{_count(total - warm)} cold placed by their content ({', '.join(parts)})")


def _judged_ks(metrics: dict) -> List[int]:
    if metrics.get("judged_ks"):
        return list(metrics["judged_ks"])
    # metrics.json of a gate from before the comparison with production: its measured ks
    return [int(name.split("@", 1)[1]) for name in metrics["model"]]


@dataclasses.dataclass
class RunSummary:
    components: Dict[str, str]          # component -> COMPLETE | CACHED | FAILED | ...
    metrics: Optional[dict]             # the gate's metrics.json
    pushed: bool
    pushed_path: Optional[str]
    # The pushed version folder of the production model the gate compared with (None: none,
    # or not found in the metadata: the summary names it by its Model artifact id).
    production_version: Optional[str] = None
    warm_start: Optional[dict] = None   # the Trainer's warm_start.json; None if it wrote none
    warm_start_from: Optional[str] = None   # its base model: "version <v>", "model <id>" or None
    catalog: Optional[dict] = None   # the Trainer's catalog.json (trainer.catalog.composition)

    @property
    def already_in_production(self) -> bool:
        """The gate found the Trainer's model is the production model (a cached Trainer)."""
        return bool(self.metrics and self.metrics.get("already_in_production"))

    @property
    def succeeded(self) -> bool:
        """A model is in production that passed this run's data: pushed now, or already."""
        return self.pushed or self.already_in_production

    def _gate_lines(self) -> List[str]:
        metrics = self.metrics
        production = metrics.get("production")
        name = self.production_version or (production and f"model {production['id']}")
        ks = _judged_ks(metrics)
        lines = []
        for k in ks:
            recall = f"recall@{k}"
            line = f"{recall} {metrics['model'][recall]:.3f}"
            if production:
                line += f" vs production {name} {production[recall]:.3f}"
            line += f" vs popularity {metrics['popularity'][recall]:.3f}"
            lines.append(line)
        if self.already_in_production:
            verdict = "-> already in production: not blessed again, nothing new to push"
        elif metrics["blessed"]:
            verdict = "-> blessed"
        elif metrics.get("reasons"):
            verdict = f"-> NOT blessed ({'; '.join(metrics['reasons'])})"
        else:
            verdict = "-> NOT blessed"
        if not production and not self.already_in_production:
            verdict += " (first model: judged against popularity only)"
        lines[-1] += f" {verdict}"
        for entry in metrics.get("ks", []):
            if "why" in entry:
                lines.append(f"(recall@{entry['configured']} judged at k={entry['judged']}: "
                             f"{entry['why']})")
        if production and production.get("note"):
            lines.append(f"(production {name}: {production['note']})")
        return [("gate: " if i == 0 else "      ") + line for i, line in enumerate(lines)]

    def describe(self, components: bool = True) -> str:
        """The summary's lines; `components` false leaves out the line of component states
        (`towergraph run` has shown one line per component already)."""
        lines = []
        if components:
            lines.append("components: " + ", ".join(f"{name} {state}"
                                                    for name, state in self.components.items()))
        if self.warm_start is not None:
            lines.append(_warm_start_line(self.warm_start, self.warm_start_from))
        if self.catalog is not None:
            lines.append(_catalog_line(self.catalog))
        if self.metrics:
            lines.extend(self._gate_lines())
        if self.pushed:
            lines.append(f"pushed: {self.pushed_path}")
        elif self.already_in_production:
            where = f" as version {self.production_version}" if self.production_version else ""
            lines.append(f"pushed: no new version (the model is already in production{where})")
        else:
            lines.append("pushed: nothing (the model did not pass the gate)")
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
    """The pipeline node's id (its "<pipeline>.<id>" context, as the console shows it:
    production_model, not Resolver), else the last part of the execution type's name."""
    contexts = store.get_contexts_by_execution(execution.id)
    types = store.get_context_types_by_id([context.type_id for context in contexts])
    for context, context_type in zip(contexts, types):
        if context_type.name == "node":
            return context.name.rsplit(".", 1)[-1]
    return store.get_execution_types_by_id([execution.type_id])[0].name.rsplit(".", 1)[-1]


def component_seconds(config: PipelineConfig) -> Dict[str, float]:
    """Seconds each component of the latest run took (cached ones: the cache look-up)."""
    store = _store(config)
    return {_component_name(store, execution):
            (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1e3
            for execution in _latest_run_executions(store, config)}


def _event_artifact(store, executions: Sequence, component: str, key: str,
                    event_types: Sequence[int]):
    """The artifact at `key` of `component`'s events of `event_types` in `executions`."""
    for execution in executions:
        if _component_name(store, execution) != component:
            continue
        for event in store.get_events_by_execution_ids([execution.id]):
            if event.type in event_types and event.path.steps and event.path.steps[0].key == key:
                return store.get_artifacts_by_id([event.artifact_id])[0]
    return None


_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
_INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)


def output_uri(config: PipelineConfig, component: str, key: str) -> str:
    """The URI of output `key` (e.g. "transform_graph") of `component` in the latest run."""
    store = _store(config)
    artifact = _event_artifact(store, _latest_run_executions(store, config), component, key,
                               _OUTPUT_EVENTS)
    if artifact is None:
        raise RuntimeError(f"the latest run of {config.pipeline_name!r} has no output {key!r} "
                           f"of {component}")
    return artifact.uri


def pushed_version(store, model_id: int) -> Optional[str]:
    """The version folder the Pusher pushed Model artifact `model_id` to (any run), if any."""
    execution_ids = [event.execution_id for event in store.get_events_by_artifact_ids([model_id])
                     if event.type in _INPUT_EVENTS]
    for pushed_model in _outputs(store, execution_ids, "PushedModel"):
        properties = pushed_model.custom_properties
        if "pushed" in properties and properties["pushed"].int_value == 1:
            if properties["pushed_version"].string_value:    # TFX's Pusher sets both
                return properties["pushed_version"].string_value
            destination = properties["pushed_destination"].string_value
            return os.path.basename(destination.rstrip("/")) or None
    return None


def _model_name(store, model_id: int) -> str:
    version = pushed_version(store, model_id)
    return f"version {version}" if version else f"model {model_id}"


def _trainer_file(model, name: str) -> Optional[dict]:
    """A JSON file the Trainer wrote into its Model artifact `model`; None without."""
    path = model and os.path.join(model.uri, name)
    if not path or not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def _warm_start(store, executions, model) -> tuple:
    """The Trainer's warm_start.json (in its Model artifact `model`) and its base model's
    name (or None)."""
    info = _trainer_file(model, WARM_START_FILE)
    if info is None:
        return None, None
    if not info.get("base_model"):
        return info, None
    base = _event_artifact(store, executions, "Trainer", "base_model", _INPUT_EVENTS)
    if base is None:     # not recorded as an input: the Model artifact in that folder
        base_uri = model_uri(info["base_model"])
        found = [artifact for uri in (base_uri, info["base_model"])
                 for artifact in store.get_artifacts_by_uri(uri)]
        base = found[0] if found else None
    return info, (_model_name(store, base.id) if base is not None else None)


def latest_run_summary(config: PipelineConfig) -> RunSummary:
    store = _store(config)
    executions = _latest_run_executions(store, config)
    components = {_component_name(store, e): _STATE_NAMES[e.last_known_state]
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
    production = (metrics or {}).get("production")
    production_version = production and pushed_version(store, production["id"])
    model = _event_artifact(store, executions, "Trainer", "model", _OUTPUT_EVENTS)
    warm_start, warm_start_from = _warm_start(store, executions, model)
    return RunSummary(components, metrics, pushed_path is not None, pushed_path,
                      production_version=production_version, warm_start=warm_start,
                      warm_start_from=warm_start_from,
                      catalog=_trainer_file(model, CATALOG_FILE))
