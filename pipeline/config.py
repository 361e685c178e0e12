"""The pipeline's one config: documented defaults, a YAML file, and command-line overrides.

A YAML file holds any of the top-level settings below plus a `model:` section with the
settings of trainer.model.ModelConfig. Unknown keys are errors, not silently ignored.
"""

import dataclasses
import os
from typing import Any, Dict, Optional

import yaml

from towergraph.constants import DEFAULT_MAX_K, DEFAULT_MODEL_NAME
from trainer.config import ModelConfig, from_mapping
from trainer.config import setting as _setting


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    pipeline_name: str = _setting("towergraph", "TFX pipeline name (MLMD and the tfx CLI key)")
    data_dir: str = _setting("work/data", "prepared data: the output of `towergraph data prepare`")
    output_dir: str = _setting("work/run", "holds pipeline_root/, metadata.sqlite and serving/ "
                               "unless those are set explicitly")
    pipeline_root: str = _setting("", "TFX artifacts (default: <output_dir>/pipeline_root)")
    metadata_path: str = _setting("", "MLMD sqlite file (default: <output_dir>/metadata.sqlite)")
    serving_dir: str = _setting("", "Pusher writes <serving_dir>/<model_name>/<version>/ "
                                "(default: <output_dir>/serving)")
    model_name: str = _setting(DEFAULT_MODEL_NAME, "the served model's name")
    top_items: int = _setting(0, "keep only the N most-rated items in the model (0: all)")
    eval_percent: int = _setting(20, "share of interactions held out for evaluation")
    gate_ks: tuple = _setting((10, 100), "the model must beat popularity on recall@k for "
                              "each k, or it is not pushed")
    max_k: int = _setting(DEFAULT_MAX_K, "largest k a serving signature accepts")
    beam_mode: str = _setting("multi_processing", "Beam DirectRunner mode: multi_processing "
                              "or in_memory (faster for small data)")
    beam_workers: int = _setting(0, "DirectRunner workers (0: one per core)")
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig,
                                           metadata={"help": "model settings"})

    def __post_init__(self):
        problems = []
        if not 0 < self.eval_percent < 100:
            problems.append(f"eval_percent must be between 1 and 99, not {self.eval_percent}")
        if self.top_items < 0:
            problems.append(f"top_items must be 0 (all) or positive, not {self.top_items}")
        if not self.gate_ks or any(k < 1 or k > self.max_k for k in self.gate_ks):
            problems.append(f"gate_ks must be between 1 and max_k={self.max_k}: {self.gate_ks}")
        if self.beam_mode not in ("multi_processing", "in_memory"):
            problems.append(f"beam_mode must be multi_processing or in_memory, "
                            f"not {self.beam_mode!r}")
        if problems:
            raise ValueError("invalid pipeline config: " + "; ".join(problems))

    def _under_output(self, explicit: str, name: str) -> str:
        return explicit or os.path.join(self.output_dir, name)

    @property
    def root(self) -> str:
        return self._under_output(self.pipeline_root, "pipeline_root")

    @property
    def metadata(self) -> str:
        return self._under_output(self.metadata_path, "metadata.sqlite")

    @property
    def serving(self) -> str:
        return self._under_output(self.serving_dir, "serving")

    @property
    def model_base_path(self) -> str:
        """Where TF Serving looks for versions: <serving_dir>/<model_name>."""
        return os.path.join(self.serving, self.model_name)

    @property
    def interactions_dir(self) -> str:
        return os.path.join(self.data_dir, "interactions")

    def replace(self, **changes: Any) -> "PipelineConfig":
        """A copy with top-level changes and `model` given as a dict of model changes."""
        model_changes = changes.pop("model", None) or {}
        model = dataclasses.replace(self.model, **model_changes)
        return dataclasses.replace(self, model=model, **changes)


def from_dict(values: Dict[str, Any], where: str = "config") -> PipelineConfig:
    values = dict(values or {})
    model = from_mapping(ModelConfig, values.pop("model", None) or {}, f"{where}, section model")
    return from_mapping(PipelineConfig, values, where, model=model)


def load_config(path: Optional[str] = None, **overrides: Any) -> PipelineConfig:
    """The YAML file at `path` (or the defaults), then `overrides` on top."""
    values: Dict[str, Any] = {}
    if path:
        if not os.path.exists(path):
            raise FileNotFoundError(f"config file {path} does not exist")
        with open(path, encoding="utf-8") as handle:
            values = yaml.safe_load(handle) or {}
    config = from_dict(values, where=path or "config")
    return config.replace(**overrides) if overrides else config
