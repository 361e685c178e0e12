"""The pipeline's one config: documented defaults, a YAML file, and command-line overrides.

A YAML file holds any of the top-level settings below plus a `model:` section with the
settings of trainer.config.ModelConfig. Unknown keys, wrong types (`epochs: 2.5`) and invalid
values are errors, all reported at once by trainer/settings.py's loader as one ConfigError,
each naming the setting and where its value came from (file and line, or flag).
"""

import dataclasses
import os
from typing import Any, Callable, List, Mapping, Optional, Tuple

from pipeline.data.prepared import ITEMS
from towergraph.constants import DEFAULT_MAX_K, DEFAULT_MODEL_NAME
from trainer.config import ModelConfig
from trainer.settings import ConfigError, Layer, invalid, load, read_yaml
from trainer.settings import setting as _setting

BEAM_MODES = ("auto", "in_memory", "multi_processing")
# beam_mode auto runs in memory up to this many bytes of interactions CSV (MovieLens-100K: 2 MB;
# 1M synthetic ratings: 37 MB; goodbooks-10k's 6M ratings: 69 MB) and multi-processing above:
# bench/pipeline_run.py and bench/scale.py --beam-mode measure both sides.
AUTO_IN_MEMORY_MAX_BYTES = 64 * 2 ** 20

# The Beam runner of every component that does not run on Dataflow (locally, and on Vertex AI
# inside each step's container), named rather than left to Beam's DirectRunner, which (Beam
# 2.74) first tries its Prism runner on every pipeline: Prism downloads its binary from
# GitHub, so offline each Beam component lost 0.3 to 4 s to the attempt before falling back to
# this runner, and online the components would run on a runner TFX is not tested on.
DIRECT_RUNNER = "FnApiRunner"


def direct_runner_args(mode: str, workers: int) -> List[str]:
    """Beam flags of DIRECT_RUNNER in `mode` (in_memory or multi_processing) with `workers`
    worker processes (0: one per core)."""
    return [f"--runner={DIRECT_RUNNER}", f"--direct_running_mode={mode}",
            f"--direct_num_workers={workers}"]

__all__ = ["ConfigError", "PipelineConfig", "from_dict", "load_config", "read_config"]


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
    gate_ks: Tuple[int, ...] = _setting((10, 100), "the model must beat popularity on recall@k for "
                              "each k, or it is not pushed")
    gate_tolerance: float = _setting(0.005, "the candidate is blessed only if, on every gate k, "
                                     "its recall@k is at most this much below the model in "
                                     "production (the latest blessed one) on the same eval "
                                     "split; the first run is judged against popularity only")
    warm_start: bool = _setting(True, "the Trainer starts from the model in production: rows of "
                                "users, items and words in both vocabularies and layers of the "
                                "same shape are copied, new ones start fresh (false: train "
                                "from scratch)")
    max_k: int = _setting(DEFAULT_MAX_K, "largest k a serving signature accepts")
    beam_mode: str = _setting("auto", "Beam DirectRunner mode: auto (in_memory while the "
                              "interactions CSV files total at most 64 MiB, about 1.7M "
                              "ratings, else multi_processing), in_memory or multi_processing")
    beam_workers: int = _setting(0, "DirectRunner workers (0: one per core)")
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig,
                                           metadata={"help": "model settings"})

    def __post_init__(self):
        problems = []
        if not 0 < self.eval_percent < 100:
            problems.append(("eval_percent", f"must be between 1 and 99, not {self.eval_percent}"))
        if self.top_items < 0:
            problems.append(("top_items", f"must be 0 (all) or positive, not {self.top_items}"))
        if self.max_k < 1:
            problems.append(("max_k", f"must be positive, not {self.max_k}"))
        elif not self.gate_ks or any(k < 1 or k > self.max_k for k in self.gate_ks):
            problems.append(("gate_ks", f"every k must be between 1 and max_k={self.max_k}, "
                                        f"not {list(self.gate_ks)}"))
        if not 0 <= self.gate_tolerance < 1:
            problems.append(("gate_tolerance", f"must be at least 0 and below 1, "
                                               f"not {self.gate_tolerance}"))
        if self.beam_mode not in BEAM_MODES:
            problems.append(("beam_mode", f"must be one of {', '.join(BEAM_MODES)}, "
                                          f"not {self.beam_mode!r}"))
        if self.beam_workers < 0:
            problems.append(("beam_workers", f"must be 0 (one per core) or more, "
                                             f"not {self.beam_workers}"))
        invalid(problems)

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

    @property
    def items_file(self) -> str:
        """The item catalogue (every item, rated or not) that ItemCatalogGen reads."""
        return os.path.join(self.data_dir, ITEMS)

    def resolved_beam_mode(self, files: Optional[List[str]] = None) -> str:
        """beam_mode, with auto decided by the size of the files a component reads (default:
        the interactions CSV files, which every Beam component but ItemCatalogGen works from):
        the in-memory runner has no worker processes to start and feed, which is most of a
        small run's time; past AUTO_IN_MEMORY_MAX_BYTES the multi-processing runner's cores
        win and in-memory's footprint grows too large."""
        if self.beam_mode != "auto":
            return self.beam_mode
        if files is None:
            files = [os.path.join(self.interactions_dir, name)
                     for name in _listdir(self.interactions_dir) if name.endswith(".csv")]
        total = sum(_size(path) for path in files)
        return "in_memory" if total <= AUTO_IN_MEMORY_MAX_BYTES else "multi_processing"

    def replace(self, **changes: Any) -> "PipelineConfig":
        """A copy with top-level changes and `model` given as a dict of model changes."""
        model_changes = changes.pop("model", None) or {}
        model = dataclasses.replace(self.model, **model_changes)
        return dataclasses.replace(self, model=model, **changes)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0       # no such file yet: the component reading it says so with its own error


def _listdir(path: str) -> List[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []      # no data yet: CsvExampleGen says so with its own error


def from_dict(values: Optional[Mapping[str, Any]], where: str = "config") -> PipelineConfig:
    """The config from a mapping (a parsed YAML file); ConfigError lists every problem."""
    return load(PipelineConfig, [Layer(values or {}, where)])


def load_config(path: Optional[str] = None, **overrides: Any) -> PipelineConfig:
    """The YAML file at `path` (or the defaults), then `overrides` (typed values; `model` as
    a dict of model settings) on top. ConfigError (a ValueError) lists every problem."""
    return read_config(path, overrides)


def read_config(path: Optional[str], overrides: Optional[Mapping[str, Any]] = None,
                override_origin: Callable[[str], str] = lambda name: f"override of {name}",
                text: bool = False) -> PipelineConfig:
    """The YAML file at `path` (or the defaults), then `overrides` on top.

    `override_origin` names where an override came from (setting model.epochs -> "flag
    --epochs"); `text`: the overrides are text to parse (flags) rather than typed values.
    """
    layers = [Layer(read_yaml(path), path)] if path else []
    if overrides:
        layers.append(Layer(overrides, override_origin, text=text))
    return load(PipelineConfig, layers)
