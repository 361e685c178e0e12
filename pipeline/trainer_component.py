"""The Trainer with the item catalogue as a second input, on every runner.

TFX's Trainer reads one Examples channel: here the interactions. An item nobody has rated yet
(a new book with its title and authors) is in no interaction, so it could never reach the
model. This Trainer is TFX's own (same executor, same `run_fn` contract, same Vertex AI custom
job) plus one optional input, `item_catalog`: the prepared `items.csv` as Examples from its
own CsvExampleGen (pipeline/definition.py). Its executor hands `run_fn` the catalogue's example
files as `fn_args.item_catalog_files` (None without the channel); trainer/run.py passes them
on to the catalogue, where items outside the interactions become cold items placed by their
content (trainer/catalog.py).

An artifact's location travels through a channel, resolved when the step runs, never written
into custom_config when the pipeline is defined: caching, lineage and Vertex all see it.
"""

import os
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.components.trainer import component as trainer_component
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.extensions.google_cloud_ai_platform.trainer import executor as cloud_executor
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils

ITEM_CATALOG_KEY = "item_catalog"
# The one split of the item catalogue's ExampleGen (pipeline/definition.py).
ITEM_CATALOG_SPLIT = "items"


class CatalogTrainerSpec(standard_component_specs.TrainerSpec):
    """TFX's TrainerSpec plus the optional item catalogue channel."""

    INPUTS = {**standard_component_specs.TrainerSpec.INPUTS,
              ITEM_CATALOG_KEY: ChannelParameter(type=standard_artifacts.Examples,
                                                 optional=True)}


def item_catalog_files(input_dict: Dict[str, List[types.Artifact]]) -> Optional[List[str]]:
    """File patterns of the item catalogue's examples in a Trainer's inputs; None without."""
    artifacts = input_dict.get(ITEM_CATALOG_KEY) or []
    if not artifacts:
        return None
    return [os.path.join(artifact_utils.get_split_uri([artifact], ITEM_CATALOG_SPLIT), "*")
            for artifact in artifacts]


class Executor(trainer_executor.GenericExecutor):
    """TFX's generic Trainer executor; run_fn also gets fn_args.item_catalog_files."""

    def _GetFnArgs(self, input_dict, output_dict, exec_properties):
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        fn_args.item_catalog_files = item_catalog_files(input_dict)
        return fn_args


class CloudExecutor(cloud_executor.GenericExecutor):
    """The Vertex AI custom-job Trainer executor, running Executor inside the job."""

    def _GetExecutorClass(self):
        return Executor


class Trainer(trainer_component.Trainer):
    """tfx.components.Trainer (run_fn, transformed examples, transform graph, base model)
    with the `item_catalog` input; CloudTrainer trains as a Vertex AI custom job."""

    SPEC_CLASS = CatalogTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.Channel, transform_graph: types.Channel, run_fn: str,
                 custom_config: Dict[str, Any], base_model: Optional[types.Channel] = None,
                 item_catalog: Optional[types.Channel] = None):
        # tfx.components.Trainer.__init__ builds TFX's own spec class; this one is built here
        # with the same fields (default train and eval args, as TFX's are) plus the catalogue.
        spec = CatalogTrainerSpec(
            examples=examples, transform_graph=transform_graph, base_model=base_model,
            item_catalog=item_catalog, run_fn=run_fn,
            train_args=trainer_pb2.TrainArgs(), eval_args=trainer_pb2.EvalArgs(),
            custom_config=json_utils.dumps(custom_config),
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun))
        base_component.BaseComponent.__init__(self, spec=spec)


class CloudTrainer(Trainer):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(CloudExecutor)
