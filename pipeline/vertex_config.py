"""Google Cloud settings: one YAML file, environment overrides, validation before compiling.

The file is configs/vertex.yaml, or the one named by $TOWERGRAPH_VERTEX_CONFIG (or --config).
Top-level settings say where things live on Google Cloud; `trainer:`, `dataflow:` and `steps:`
say how the work runs, `registry:` where blessed models are registered; `pipeline:` holds the
settings of configs/local.yaml except the paths.
A value may use {project}, {region} and {bucket}. Every problem is reported at once, each
naming the setting and where its value came from (the file and line, or an environment
variable): trainer/settings.py is the one loader, shared with the local config.

No TFX or Google Cloud import here: a config error shows up in a second.
"""

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from pipeline.config import PipelineConfig, direct_runner_args
from trainer.settings import (ConfigError, Layer, Origin, Problem, build, read, read_yaml,
                              setting)

CONFIG_ENV = "TOWERGRAPH_VERTEX_CONFIG"
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "vertex.yaml"
# Environment variables that override a top-level setting of the file.
ENV_OVERRIDES = {
    "project": "GOOGLE_CLOUD_PROJECT",
    "region": "GOOGLE_CLOUD_REGION",
    "bucket": "TOWERGRAPH_BUCKET",
    "image": "TOWERGRAPH_IMAGE",
    "service_account": "TOWERGRAPH_SERVICE_ACCOUNT",
}
# Paths of the local config that the top level of this file sets instead.
_LOCAL_PATHS = ("data_dir", "output_dir", "pipeline_root", "metadata_path", "serving_dir")
# The top-level gs:// paths the pipeline section's config gets.
_CLOUD_PATHS = ("data_dir", "pipeline_root", "serving_dir")
_PLACEHOLDERS = ("project", "region", "bucket")

_PROJECT = re.compile(r"^(?:[a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+(?:-[a-z]+)+[0-9]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_GCS_PATH = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$")
# n1-standard-8, a2-highgpu-1g, c3-highcpu-22, ct5lp-hightpu-4t; e2/f1/g1 shared-core types.
_MACHINE_TYPE = re.compile(r"^(?:[a-z]{1,3}[0-9][a-z0-9]*-[a-z]+-[0-9]+[a-z]*"
                           r"|(?:e2|f1|g1)-(?:micro|small|medium))$")
_SERVICE_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9-]*@[a-z0-9.:-]+\.gserviceaccount\.com$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
# Vertex AI's newest prebuilt TensorFlow prediction image (the SDK's constants/prediction.py
# lists tf2-cpu up to 2.15; the us- image serves every region).
DEFAULT_SERVING_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
_DISPLAY_NAME_CHARS = 128  # Vertex AI's limit for a model's display name


class VertexConfigError(ConfigError):
    """Every problem of a Google Cloud config, one per line."""

    title = "invalid Google Cloud config"


@dataclasses.dataclass(frozen=True)
class TrainerSettings:
    machine_type: str = setting("n1-standard-8", "machine of the Trainer's custom job")
    replica_count: int = setting(1, "machines; more than 1 trains one model on all of them "
                                 "(MultiWorkerMirroredStrategy, the batch split across them; "
                                 "the chief exports)")
    accelerator_type: str = setting("", "e.g. NVIDIA_TESLA_T4; empty: CPU only")
    accelerator_count: int = setting(0, "accelerators per machine (with accelerator_type)")


@dataclasses.dataclass(frozen=True)
class DataflowSettings:
    enabled: bool = setting(False, "run the Beam components on Dataflow; false: Beam's "
                            "DirectRunner inside each step's container")
    machine_type: str = setting("n1-standard-4", "Dataflow worker machine")
    max_num_workers: int = setting(10, "autoscaling limit")
    temp_location: str = setting("gs://{bucket}/dataflow/tmp", "Dataflow temp files")
    staging_location: str = setting("gs://{bucket}/dataflow/staging", "Dataflow staging")
    extra_args: Tuple[str, ...] = setting((), "more Beam flags, e.g. --subnetwork=...")


@dataclasses.dataclass(frozen=True)
class StepSettings:
    cpu_limit: float = setting(0.0, "vCPUs of every pipeline step but the Trainer and the "
                               "two CsvExampleGens, which TFX 1.16 compiles without resources "
                               "(0: the Vertex AI default)")
    memory_limit: float = setting(0.0, "GB of memory of those steps (0: the default)")


@dataclasses.dataclass(frozen=True)
class RegistrySettings:
    enabled: bool = setting(True, "upload each pushed (blessed) model to the Vertex AI Model "
                            "Registry as a new version of one model, its gate metrics as labels")
    display_name: str = setting("", "the registered model's display name (empty: "
                                "pipeline.model_name)")
    serving_image: str = setting(DEFAULT_SERVING_IMAGE, "prediction image of the registered "
                                 "versions: Vertex AI's prebuilt TF 2.15 CPU image (the newest "
                                 "it offers; the model is exported by TF 2.16), or your own TF "
                                 "Serving image in Artifact Registry")


@dataclasses.dataclass(frozen=True)
class VertexConfig:
    project: str = setting("", "Google Cloud project id")
    region: str = setting("", "region of Vertex AI, Dataflow and the Artifact Registry")
    bucket: str = setting("", "Cloud Storage bucket name (no gs://)")
    image: str = setting("{region}-docker.pkg.dev/{project}/towergraph/"
                         "towergraph-pipeline:0.1.0", "pipeline image (cloudbuild.yaml)")
    service_account: str = setting("", "service account the runs act as "
                                   "(empty: the Compute Engine default)")
    pipeline_root: str = setting("gs://{bucket}/pipeline_root", "TFX artifacts")
    data_dir: str = setting("gs://{bucket}/data", "prepared data: interactions/*.csv and "
                            "items.csv")
    serving_dir: str = setting("gs://{bucket}/serving", "Pusher writes "
                               "<serving_dir>/<model_name>/<version>/")
    enable_caching: bool = setting(True, "reuse the results of unchanged steps")
    compiled_path: str = setting("work/vertex/pipeline.json", "where compile writes the spec")
    trainer: TrainerSettings = dataclasses.field(default_factory=TrainerSettings)
    dataflow: DataflowSettings = dataclasses.field(default_factory=DataflowSettings)
    steps: StepSettings = dataclasses.field(default_factory=StepSettings)
    registry: RegistrySettings = dataclasses.field(default_factory=RegistrySettings)
    pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)
    source: str = ""

    @property
    def pipeline_name(self) -> str:
        return self.pipeline.pipeline_name

    def beam_pipeline_args(self) -> List[str]:
        """Flags of every Beam-based component: Dataflow when enabled, else DirectRunner."""
        if not self.dataflow.enabled:
            # auto: multi-processing (the data is in Cloud Storage and sized only at run time).
            mode = self.pipeline.beam_mode
            # beam_workers 0: one worker per core of the machine the step runs on. The
            # image names the workers' dependencies: they are all in it (without a flag
            # naming them, TFX would pack its own sources for them in every step).
            return direct_runner_args("multi_processing" if mode == "auto" else mode,
                                      self.pipeline.beam_workers) + [
                f"--sdk_container_image={self.image}"]
        flow = self.dataflow
        args = ["--runner=DataflowRunner", f"--project={self.project}",
                f"--region={self.region}", f"--temp_location={flow.temp_location}",
                f"--staging_location={flow.staging_location}",
                f"--machine_type={flow.machine_type}",
                f"--max_num_workers={flow.max_num_workers}",
                "--experiments=use_runner_v2", f"--sdk_container_image={self.image}"]
        if self.service_account:
            args.append(f"--service_account_email={self.service_account}")
        return args + list(flow.extra_args)

    def trainer_job_spec(self) -> Dict[str, Any]:
        """The Vertex AI CustomJobSpec of the Trainer (the first pool is the chief)."""
        machine: Dict[str, Any] = {"machine_type": self.trainer.machine_type}
        if self.trainer.accelerator_type:
            machine.update(accelerator_type=self.trainer.accelerator_type,
                           accelerator_count=self.trainer.accelerator_count)
        pools = [{"machine_spec": machine, "replica_count": 1,
                  "container_spec": {"image_uri": self.image}}]
        if self.trainer.replica_count > 1:
            pools.append({"machine_spec": dict(machine),
                          "replica_count": self.trainer.replica_count - 1,
                          "container_spec": {"image_uri": self.image}})
        spec: Dict[str, Any] = {"worker_pool_specs": pools}
        if self.service_account:
            spec["service_account"] = self.service_account
        return spec

    def registry_parameters(self) -> Optional[Dict[str, str]]:
        """The parameters of the ModelRegistry step (pipeline/registry.py); None: no step."""
        if not self.registry.enabled:
            return None
        return {"project": self.project, "region": self.region,
                "display_name": self.registry.display_name,
                "serving_image": self.registry.serving_image}


# --- loading ------------------------------------------------------------------------------------

_SECTIONS = ("trainer", "dataflow", "steps", "registry")


def config_path(path: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> str:
    environ = os.environ if environ is None else environ
    return path or environ.get(CONFIG_ENV) or str(DEFAULT_CONFIG)


def load_vertex_config(path: Optional[str] = None,
                       environ: Optional[Mapping[str, str]] = None) -> VertexConfig:
    """The file at `path` (else $TOWERGRAPH_VERTEX_CONFIG, else configs/vertex.yaml) with the
    environment's overrides, validated; raises VertexConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    path = config_path(path, environ)
    raw = _read(path)
    problems: List[Problem] = []
    environment = Layer({name: environ[variable] for name, variable in ENV_OVERRIDES.items()
                         if environ.get(variable)},
                        lambda name: f"environment variable {ENV_OVERRIDES[name]}", text=True)
    # The one loader: types, unknown settings, sections (pipeline: included) for every layer.
    values, sources = read(VertexConfig, [Layer(raw, path), environment], problems,
                           skip=("source",))
    _pipeline_paths(raw, path, problems)
    unchecked = {problem.setting for problem in problems}  # only defaults stand in for these

    values["bucket"] = re.sub(r"^gs://", "", values["bucket"]).rstrip("/")
    for name, variable in (("project", "GOOGLE_CLOUD_PROJECT"), ("region", "GOOGLE_CLOUD_REGION"),
                           ("bucket", "TOWERGRAPH_BUCKET")):
        if not values[name] and name not in unchecked:
            problems.append(Problem("", f"{name} is not set: set `{name}:` in {path} or the "
                                        f"environment variable {variable}"))
    missing = {name for name in _PLACEHOLDERS if not values[name] or name in unchecked}
    for prefix, group in [("", values)] + [(f"{name}.", values[name]) for name in _SECTIONS]:
        for name, value in group.items():
            dotted = prefix + name
            if isinstance(value, dict) or dotted in unchecked:  # a section; a reported value
                continue
            expanded = _expand(value, values, dotted, sources[dotted], problems)
            if expanded is None:  # reported: checking the unexpanded value adds nothing
                unchecked.add(dotted)
                continue
            group[name], uses = expanded
            if uses & missing:  # derived from a missing setting: fixing that one fixes it
                unchecked.add(dotted)

    def check(name: str, ok: bool, problem: str) -> None:
        if not ok and name not in unchecked:
            problems.append(Problem(name, problem, sources[name]))

    if not values["registry"]["display_name"]:
        values["registry"]["display_name"] = values["pipeline"]["model_name"]
    _validate(values, {name: values[name] for name in _SECTIONS}, check)
    name = values["pipeline"]["pipeline_name"]
    check("pipeline.pipeline_name", bool(_PIPELINE_NAME.match(name)),
          f"Vertex AI needs lowercase letters, digits and hyphens, not {name!r}")
    values["pipeline"].update({name: values[name] for name in _CLOUD_PATHS})
    config = build(VertexConfig, values, sources, problems, source=path)
    if problems:
        raise VertexConfigError(problems)
    return config


def _read(path: str) -> Any:
    try:
        raw = read_yaml(path, missing_hint=f" (give one with --config or ${CONFIG_ENV}; "
                                           f"configs/vertex.yaml is the template)")
    except ConfigError as error:
        raise VertexConfigError(error.problems) from None
    if raw is not None and not isinstance(raw, Mapping):
        raise VertexConfigError([f"{path}: expected a mapping of settings (name: value lines), "
                                 f"got {type(raw).__name__}"])
    return raw


def _pipeline_paths(raw: Any, path: str, problems: List[Problem]) -> None:
    """The pipeline: section's paths are the top level's gs:// paths, not set there."""
    section = (raw or {}).get("pipeline")
    if not isinstance(section, Mapping):
        return
    for name in section:
        if name in _LOCAL_PATHS:
            problems.append(Problem(f"pipeline.{name}", "set the Cloud Storage paths at the top "
                                    "level (data_dir, pipeline_root, serving_dir), not in the "
                                    "pipeline section",
                                    Origin.in_file(path, getattr(section, "lines", {}).get(name))))


def _expand(value: Any, top: Dict[str, Any], name: str, source: str,
            problems: List[Problem]):
    """`value` with {project}, {region}, {bucket} filled in, and which it used; None if bad."""
    if isinstance(value, tuple):
        parts = [_expand(part, top, name, source, problems) for part in value]
        if any(part is None for part in parts):
            return None
        return tuple(part for part, _ in parts), set().union(*[uses for _, uses in parts])
    if not isinstance(value, str) or "{" not in value:
        return value, set()
    uses = set(re.findall(r"{([^{}]*)}", value))
    unknown = sorted(uses - set(_PLACEHOLDERS))
    if unknown:
        problems.append(Problem(name, f"unknown placeholder(s) {unknown} in {value!r}; a value "
                                      f"may use {{project}}, {{region}} and {{bucket}}", source))
        return None
    return value.format(**{key: top[key] for key in _PLACEHOLDERS}), uses


def _validate(top: Dict[str, Any], nested: Dict[str, Dict[str, Any]], check) -> None:
    if top["project"]:
        check("project", bool(_PROJECT.match(top["project"])),
              f"{top['project']!r} is not a project id (6-30 lowercase letters, digits, "
              f"hyphens; the id, not the display name or number)")
    if top["region"]:
        check("region", bool(_REGION.match(top["region"])),
              f"{top['region']!r} is not a region like us-central1 (not a zone like "
              f"us-central1-a)")
    if top["bucket"]:
        check("bucket", bool(_BUCKET.match(top["bucket"])),
              f"{top['bucket']!r} is not a bucket name (lowercase, no path)")
    check("image", _image_problem(top["image"]) is None, _image_problem(top["image"]) or "")
    if top["service_account"]:
        check("service_account", bool(_SERVICE_ACCOUNT.match(top["service_account"])),
              f"{top['service_account']!r} is not a service account email "
              f"(NAME@PROJECT.iam.gserviceaccount.com)")
    gcs = ["pipeline_root", "data_dir", "serving_dir"]
    values = dict(top)
    if nested["dataflow"]["enabled"]:
        gcs += ["dataflow.temp_location", "dataflow.staging_location"]
        values.update({f"dataflow.{key}": value for key, value in nested["dataflow"].items()})
    for name in gcs:
        check(name, bool(_GCS_PATH.match(values[name])),
              f"{values[name]!r} must be a gs:// path: Vertex AI cannot read this machine's "
              f"files")
    check("compiled_path", bool(top["compiled_path"]) and "://" not in top["compiled_path"],
          f"{top['compiled_path']!r} must be a local file path")
    trainer = nested["trainer"]
    _machine(check, "trainer.machine_type", trainer["machine_type"])
    check("trainer.replica_count", trainer["replica_count"] >= 1,
          f"must be at least 1, not {trainer['replica_count']}")
    _accelerator(check, trainer["accelerator_type"], trainer["accelerator_count"])
    flow = nested["dataflow"]
    if flow["enabled"]:
        _machine(check, "dataflow.machine_type", flow["machine_type"])
        check("dataflow.max_num_workers", flow["max_num_workers"] >= 1,
              f"must be at least 1, not {flow['max_num_workers']}")
        bad = [arg for arg in flow["extra_args"] if not str(arg).startswith("--")]
        check("dataflow.extra_args", not bad, f"every entry must be a --flag, not {bad}")
    for name, value in nested["steps"].items():
        check(f"steps.{name}", value >= 0, f"must be 0 (the default) or more, not {value}")
    registry = nested["registry"]
    if registry["enabled"]:
        name = registry["display_name"]
        check("registry.display_name",
              0 < len(name) <= _DISPLAY_NAME_CHARS and name.strip() == name,
              f"{name!r} is not a model display name for Vertex AI (1 to "
              f"{_DISPLAY_NAME_CHARS} characters, no leading or trailing spaces)")
        problem = _image_problem(registry["serving_image"], DEFAULT_SERVING_IMAGE)
        check("registry.serving_image", problem is None, problem or "")


def _machine(check, name: str, value: str) -> None:
    check(name, bool(_MACHINE_TYPE.match(value)),
          f"unknown machine type format {value!r}: expected FAMILY-TYPE-CPUS such as "
          f"n1-standard-8, e2-highmem-4 or a2-highgpu-1g")


def _accelerator(check, kind: str, count: int) -> None:
    if kind and count < 1:
        check("trainer.accelerator_count", False,
              f"accelerator_type {kind} needs accelerator_count (1, 2, 4 or 8), not {count}")
    elif count and not kind:
        check("trainer.accelerator_type", False,
              f"accelerator_count is {count} but no accelerator_type is set "
              f"(e.g. NVIDIA_TESLA_T4)")
    elif kind:
        known = _known_accelerators()
        check("trainer.accelerator_type", known is None or kind in known,
              f"unknown accelerator {kind!r}; Vertex AI knows {', '.join(sorted(known or []))}")


def _known_accelerators() -> Optional[List[str]]:
    """Accelerator names of Vertex AI's API (its enum: data only, no call)."""
    try:
        from google.cloud.aiplatform_v1.types.accelerator_type import AcceleratorType
    except ImportError:  # pragma: no cover - the lock installs it
        return None
    return [name for name in AcceleratorType.__members__ if not name.endswith("UNSPECIFIED")]


def _image_problem(image: str, example: str = "us-central1-docker.pkg.dev/PROJECT/towergraph/"
                                              "towergraph-pipeline:0.1.0") -> Optional[str]:
    hint = f"expected REGISTRY/PATH:TAG such as {example}"
    name, _, digest = image.partition("@")
    host, _, path = name.partition("/")
    if not path or not ("." in host or ":" in host or host == "localhost"):
        return f"{image!r} has no registry host: {hint}"
    if digest:
        return None if _IMAGE_DIGEST.match(digest) else f"{image!r} has a malformed digest"
    repository, _, tag = path.rpartition(":")
    if not repository or "/" in tag:
        return f"{image!r} has no tag: {hint}"
    return None if _IMAGE_TAG.match(tag) else f"{image!r} has a malformed tag {tag!r}"
