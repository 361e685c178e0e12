"""create_pipeline(): the one pipeline definition that every runner (local, Vertex) uses.

CsvExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator
  -> Transform (vocabularies) -> Trainer (TFRS two-tower) -> RetrievalGate -> Pusher
                 production model (latest blessed) --^ warm start  ^-- baseline
  ItemCatalogGen (items.csv: every item, rated or not) --^ cold items
  [-> ModelRegistry: on Vertex AI, each pushed model becomes a Model Registry version]
"""

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
from tfx import v1 as tfx

from pipeline.config import PipelineConfig, direct_runner_args
from pipeline.data.prepared import ITEMS as ITEMS_FILE
from pipeline.gate import RetrievalGate
from pipeline.registry import ModelRegistry
from pipeline.trainer_component import ITEM_CATALOG_SPLIT, CloudTrainer, Trainer

_SETUP_FILE = Path(__file__).resolve().parents[1] / "setup.py"
_PROJECT_CODE = [Path(__file__).resolve().parents[1] / "trainer",
                 Path(__file__).resolve().parent]


def code_version() -> str:
    """Fingerprint of the trainer and pipeline sources.

    The Transform, Trainer and gate code is referenced by import path, which TFX's cache key
    does not cover; passing this fingerprint as a parameter makes a code change re-run them.
    """
    digest = hashlib.sha256()
    for folder in _PROJECT_CODE:
        for path in sorted(folder.rglob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def create_pipeline(config: PipelineConfig,
                    beam_pipeline_args: Optional[List[str]] = None,
                    enable_cache: bool = True,
                    cloud_training: Optional[Dict[str, Any]] = None,
                    until: Optional[str] = None,
                    model_registry: Optional[Dict[str, str]] = None,
                    item_catalog_beam_args: Optional[List[str]] = None) -> tfx.dsl.Pipeline:
    """The pipeline for `config`.

    Args:
      cloud_training: Trainer custom_config entries (ai_platform_training_args, ...) that run
        it as a Vertex AI custom job (pipeline/vertex_runner.py); None trains in-process.
      until: stop after the component with this id (e.g. "Transform" for a benchmark that
        trains from Transform's output itself); None runs every component.
      model_registry: ModelRegistry's parameters (project, region, display_name,
        serving_image; pipeline/vertex_runner.py): each pushed model is also uploaded to the
        Vertex AI Model Registry; None: no such step.
      item_catalog_beam_args: Beam flags for ItemCatalogGen alone, after the pipeline's (so
        they win): the local runner's choice for items.csv, a small file that need not pay
        the multi-processing start-up the interactions may need; None: the pipeline's.
    """
    version = code_version()
    split = tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=100 - config.eval_percent),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=config.eval_percent),
    ])
    example_gen = tfx.components.CsvExampleGen(
        input_base=config.interactions_dir,
        output_config=tfx.proto.Output(split_config=split))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    # Vocabularies over the train split. No statistics of its own (StatisticsGen computes the
    # raw data's; nothing reads Transform's) nor analyzer cache (one span; TFX caches the
    # component as a whole). TensorFlow Transform's tf.compat.v1 graph path: the same
    # vocabularies and transformed examples as its TF2 path (nothing here needs a TF2 graph:
    # the Trainer reads the vocabularies and the feature spec), in less time: 9.9 / 9.5 s
    # against 12.0 / 11.8 s on ML-100K, 54.3 s against 59.5 s on 1M ratings (bench/scale.py).
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn="trainer.preprocessing.preprocessing_fn",
        custom_config={"top_items": config.top_items, "code_version": version},
        disable_statistics=True, disable_analyzer_cache=True, force_tf_compat_v1=True)
    # The model in production: the latest blessed model of earlier runs (none at first).
    production = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("production_model")
    # The item catalogue: items nobody rated yet reach the model only through it.
    item_catalog = tfx.components.CsvExampleGen(
        input_base=config.data_dir,
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name=ITEM_CATALOG_SPLIT, pattern=ITEMS_FILE)]),
        output_config=tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
            tfx.proto.SplitConfig.Split(name=ITEM_CATALOG_SPLIT, hash_buckets=1)])),
    ).with_id("ItemCatalogGen") if config.model.cold_items else None
    if item_catalog and item_catalog_beam_args:
        item_catalog.with_beam_pipeline_args(item_catalog_beam_args)
    trainer = (CloudTrainer if cloud_training else Trainer)(
        run_fn="trainer.run.run_fn",
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        # Warm start: initialised from the model in production where vocabularies overlap.
        base_model=production.outputs["model"] if config.warm_start else None,
        # Cold items: catalogue items outside the item vocabulary, placed by their content.
        item_catalog=item_catalog.outputs["examples"] if item_catalog else None,
        custom_config={"model": dataclasses.asdict(config.model), "max_k": config.max_k,
                       "code_version": version, **(cloud_training or {})}).with_id("Trainer")
    # Blesses the candidate if it beats popularity and is not worse than production.
    gate = RetrievalGate(
        model=trainer.outputs["model"],
        baseline_model=production.outputs["model"],
        examples=transform.outputs["transformed_examples"],
        recall_ks=",".join(str(k) for k in config.gate_ks),
        tolerance=config.gate_tolerance,
        code_version=version)
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=gate.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.model_base_path)))

    components = [example_gen, statistics_gen, schema_gen, example_validator, transform,
                  *([item_catalog] if item_catalog else []), production, trainer, gate, pusher]
    if model_registry:
        # Each pushed model becomes the registered model's new version, gate metrics as labels.
        components.append(ModelRegistry(pushed_model=pusher.outputs["pushed_model"],
                                        evaluation=gate.outputs["evaluation"], **model_registry))
    components = _cut(components, until)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=tfx.orchestration.metadata
        .sqlite_metadata_connection_config(config.metadata),
        beam_pipeline_args=beam_pipeline_args)


def _cut(components: List, until: Optional[str]) -> List:
    """The components up to and including `until`, their links to the rest removed."""
    if until is None:
        return components
    ids = [component.id for component in components]
    if until not in ids:
        raise ValueError(f"no component {until!r} in the pipeline; components: {ids}")
    kept = components[:ids.index(until) + 1]
    for component in kept:
        for downstream in list(component.downstream_nodes):
            if downstream not in kept:
                component.remove_downstream_node(downstream)
    return kept


def local_beam_args(config: PipelineConfig, files: Optional[List[str]] = None) -> List[str]:
    """Local Beam flags (pipeline.config.DIRECT_RUNNER): the configured mode (auto: by the
    size of `files`, default the interactions, see PipelineConfig.resolved_beam_mode), one
    worker per core unless beam_workers says."""
    mode = config.resolved_beam_mode(files)
    # The in-memory runner is one process: a worker count would only draw Beam's warning.
    workers = 1 if mode == "in_memory" else config.beam_workers or os.cpu_count() or 1
    args = direct_runner_args(mode, workers)
    # Without flags naming the workers' dependencies, TFX packs its own sources for them: a
    # copy of its installation and an sdist in a new temporary folder, per Beam component and
    # never deleted (52 MB and about 2 s each). Local workers run in this very environment and
    # install nothing; this project's setup.py names what a remote worker would need.
    if _SETUP_FILE.is_file():
        args.append(f"--setup_file={_SETUP_FILE}")
    return args
