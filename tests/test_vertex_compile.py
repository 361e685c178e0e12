"""Compiling for Vertex AI Pipelines (pipeline/vertex_runner.py, `towergraph vertex compile`,
`tfx pipeline compile --engine=vertex`): offline, the spec must parse as KFP's PipelineJob,
hold the very pipeline the local runner runs (same components, same order, same edges) and,
after it, the ModelRegistry step (tests/test_vertex_registry.py), run the Trainer as a Vertex AI
custom job on the pipeline image, and give the Beam components Dataflow or DirectRunner flags.
"""

import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from test_vertex_config import REPO, no_cloud_environment, towergraph, write_config  # noqa: F401

BEAM_COMPONENTS = ["CsvExampleGen", "ItemCatalogGen", "StatisticsGen", "SchemaGen",
                   "ExampleValidator", "Transform"]


def compiled(tmp_path: Path, **changes):
    from pipeline.vertex_config import load_vertex_config
    from pipeline.vertex_runner import compile_pipeline
    config = load_vertex_config(str(write_config(tmp_path, **changes)), environ={})
    path = compile_pipeline(config)
    with open(path, encoding="utf-8") as handle:
        return config, json.load(handle)


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    """Dataflow off (the default): Beam's DirectRunner inside each step."""
    return compiled(tmp_path_factory.mktemp("direct"))


@pytest.fixture(scope="module")
def dataflow(tmp_path_factory):
    """Dataflow on, a GPU Trainer, and resources for the other steps."""
    return compiled(tmp_path_factory.mktemp("dataflow"),
                    dataflow={"enabled": True, "max_num_workers": 4},
                    trainer={"machine_type": "n1-standard-16", "accelerator_type":
                             "NVIDIA_TESLA_T4", "accelerator_count": 1},
                    steps={"cpu_limit": 8, "memory_limit": 32})


def tasks(spec):
    return spec["pipelineSpec"]["root"]["dag"]["tasks"]


def executor(spec, component):
    return spec["pipelineSpec"]["deploymentSpec"]["executors"][f"{component}_executor"]


def trainer_custom_config(spec):
    value = tasks(spec)["Trainer"]["inputs"]["parameters"]["custom_config"]
    return json.loads(value["runtimeValue"]["constantValue"]["stringValue"])


def local_pipeline(config):
    """The pipeline the local runner builds from the same settings."""
    from pipeline.definition import create_pipeline, local_beam_args
    return create_pipeline(config.pipeline, beam_pipeline_args=local_beam_args(config.pipeline))


def test_spec_parses_as_a_kfp_pipeline_job(direct):
    config, spec = direct
    job = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineJob())
    pipeline_spec = json_format.ParseDict(spec["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert job.display_name == "towergraph"
    assert pipeline_spec.pipeline_info.name == "towergraph"
    assert job.runtime_config.gcs_output_directory == config.pipeline_root == \
        "gs://my-bucket/pipeline_root"


def _resolver_of(task: str) -> str:
    """KFP runs the production_model resolver as two tasks (its model and its blessing
    look-ups): both stand for the one local node."""
    return "production_model" if task.startswith("production_model-") else task


def test_spec_holds_the_local_pipeline_in_the_same_order(direct):
    config, spec = direct
    local = local_pipeline(config)
    local_ids = [component.id for component in local.components]
    assert local_ids == ["CsvExampleGen", "ItemCatalogGen", "production_model",
                         "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
                         "Trainer", "RetrievalGate", "Pusher"]
    dag = tasks(spec)
    # The Vertex spec adds one step after them all: the Model Registry upload.
    assert sorted({_resolver_of(task) for task in dag}) == sorted(local_ids + ["ModelRegistry"])
    assert {"production_model-model-resolver",
            "production_model-model-blessing-resolver"} <= set(dag)
    # Same edges ...
    for component in local.components:
        if component.id == "production_model":
            continue
        assert sorted({_resolver_of(task)
                       for task in dag[component.id].get("dependentTasks", [])}) == \
            sorted(node.id for node in component.upstream_nodes), component.id
    # ... and the spec's DAG, run in the local order, never starts a task before its inputs.
    done = []
    for task in local_ids:
        if task != "production_model":
            assert {_resolver_of(t) for t in dag[task].get("dependentTasks", [])} <= set(done), \
                task
        done.append(task)
    # The Trainer warm-starts from, and the gate compares with, the resolved production model.
    for task in ("Trainer", "RetrievalGate"):
        assert "production_model-model-resolver" in dag[task]["dependentTasks"], task


def test_spec_reads_and_writes_cloud_storage(direct):
    _, spec = direct

    def parameter(task, name):
        value = tasks(spec)[task]["inputs"]["parameters"][name]
        return value["runtimeValue"]["constantValue"]["stringValue"]

    assert parameter("CsvExampleGen", "input_base") == "gs://my-bucket/data/interactions"
    # The item catalogue: items.csv beside interactions/, read by its own ExampleGen and
    # handed to the Trainer (items nobody rated become cold items).
    assert parameter("ItemCatalogGen", "input_base") == "gs://my-bucket/data"
    assert json.loads(parameter("ItemCatalogGen", "input_config")) == {
        "splits": [{"name": "items", "pattern": "items.csv"}]}
    assert "ItemCatalogGen" in tasks(spec)["Trainer"]["dependentTasks"]
    push = json.loads(parameter("Pusher", "push_destination"))
    assert push == {"filesystem": {"base_directory": "gs://my-bucket/serving/towergraph"}}


def test_trainer_is_a_vertex_custom_job_on_the_pipeline_image(direct):
    config, spec = direct
    # TFX's Vertex AI training executor, running TFX's generic Trainer executor in the job,
    # each extended by the item catalogue input (pipeline/trainer_component.py).
    assert executor(spec, "Trainer")["container"]["args"][:2] == [
        "--executor_class_path", "pipeline.trainer_component.CloudExecutor"]
    custom = trainer_custom_config(spec)
    assert custom["ai_platform_enable_vertex"] is True
    assert custom["ai_platform_vertex_region"] == "europe-west1"
    assert custom["ai_platform_training_args"] == {
        "project": "my-project",
        "job_spec": {"worker_pool_specs": [{
            "machine_spec": {"machine_type": "n1-standard-8"}, "replica_count": 1,
            "container_spec": {"image_uri": config.image}}],
            "service_account": "towergraph-pipeline@my-project.iam.gserviceaccount.com"}}
    # The model settings still reach run_fn.
    assert custom["model"]["epochs"] == 2 and custom["max_k"] == 100


def test_trainer_on_three_machines_is_a_chief_and_two_workers(tmp_path):
    """replica_count 3: pool 0 is the chief (one replica), pool 1 the two other workers, on
    the same machine and image; Vertex sets each replica's TF_CONFIG, from which run_fn picks
    MultiWorkerMirroredStrategy (trainer/distribute.py, tests/test_multiworker.py)."""
    config, spec = compiled(tmp_path, trainer={"replica_count": 3})
    pools = trainer_custom_config(spec)["ai_platform_training_args"]["job_spec"][
        "worker_pool_specs"]
    assert [pool["replica_count"] for pool in pools] == [1, 2]
    assert [pool["machine_spec"] for pool in pools] == [{"machine_type": "n1-standard-8"}] * 2
    assert [pool["container_spec"] for pool in pools] == [{"image_uri": config.image}] * 2
    # Every replica runs the same Trainer executor (and so the same run_fn).
    # TFX's Vertex AI training executor, running TFX's generic Trainer executor in the job,
    # each extended by the item catalogue input (pipeline/trainer_component.py).
    assert executor(spec, "Trainer")["container"]["args"][:2] == [
        "--executor_class_path", "pipeline.trainer_component.CloudExecutor"]


def test_custom_config_keys_are_the_ones_tfx_reads():
    import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
    from tfx import v1 as tfx
    cloud = tfx.extensions.google_cloud_ai_platform
    assert (cloud.ENABLE_VERTEX_KEY, cloud.VERTEX_REGION_KEY, cloud.TRAINING_ARGS_KEY) == (
        "ai_platform_enable_vertex", "ai_platform_vertex_region", "ai_platform_training_args")


def test_every_step_runs_the_pipeline_image_with_direct_runner_flags(direct):
    config, spec = direct
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    # The resolver's two look-ups run in Vertex itself (resolver executors, no container).
    resolvers = {name for name, value in executors.items() if "resolver" in value}
    assert len(resolvers) == 2 and all(name.startswith("production_model") for name in resolvers)
    executors = {name: value for name, value in executors.items() if name not in resolvers}
    assert len(executors) == 10
    for name, value in executors.items():
        container = value["container"]
        assert container["image"] == config.image, name
        assert container["command"] == [
            "python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
        assert "resources" not in container, name
    for component in BEAM_COMPONENTS:
        args = executor(spec, component)["container"]["args"]
        assert args[-4:] == ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                             "--direct_num_workers=0",
                             f"--sdk_container_image={config.image}"], component


def test_dataflow_flags_reach_the_beam_components(dataflow):
    config, spec = dataflow
    for component in BEAM_COMPONENTS:
        args = executor(spec, component)["container"]["args"]
        for flag in ["--runner=DataflowRunner", "--project=my-project", "--region=europe-west1",
                     "--temp_location=gs://my-bucket/dataflow/tmp",
                     "--staging_location=gs://my-bucket/dataflow/staging",
                     "--machine_type=n1-standard-4", "--max_num_workers=4",
                     "--experiments=use_runner_v2", f"--sdk_container_image={config.image}"]:
            assert flag in args, (component, flag)
        assert "--runner=FnApiRunner" not in args


def test_gpu_trainer_and_step_resources(dataflow):
    _, spec = dataflow
    pool = trainer_custom_config(spec)["ai_platform_training_args"]["job_spec"][
        "worker_pool_specs"][0]
    assert pool["machine_spec"] == {"machine_type": "n1-standard-16",
                                    "accelerator_type": "NVIDIA_TESLA_T4",
                                    "accelerator_count": 1}
    for task in tasks(spec):
        if task.startswith("production_model-"):
            continue   # a resolver: no container
        resources = executor(spec, task)["container"].get("resources")
        # The Trainer's step only launches and watches the custom job; TFX 1.16 compiles no
        # resources for CsvExampleGen (its driver and executor share a special container spec).
        if task in ("Trainer", "CsvExampleGen", "ItemCatalogGen"):
            assert resources is None
        else:
            assert resources == {"cpuLimit": 8.0, "memoryLimit": 32.0}, task


def test_local_pipeline_is_unchanged(direct):
    """Without cloud_training, create_pipeline() trains in-process as before; without
    model_registry, the Pusher is the last step."""
    from tfx import v1 as tfx
    config, _ = direct
    components = local_pipeline(config).components
    assert components[-1].id == "Pusher"
    trainer = next(c for c in components if c.id == "Trainer")
    # TFX's Trainer with the item catalogue input, training in-process (not a custom job).
    assert isinstance(trainer, tfx.components.Trainer)
    assert type(trainer).EXECUTOR_SPEC.executor_class.__name__ == "Executor"
    assert set(json.loads(trainer.exec_properties["custom_config"])) == {
        "model", "max_k", "code_version"}


# --- the commands of README "Run on Google Cloud" -----------------------------------------------

@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    """A working directory holding the shipped configs/vertex.yaml, with project and bucket
    given through the environment as the README shows."""
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    monkeypatch.setenv("TOWERGRAPH_BUCKET", "my-bucket")
    return tmp_path


def test_readme_vertex_compile(project_dir, capsys):
    assert towergraph("vertex", "compile", "--config", "configs/vertex.yaml") == 0
    out = capsys.readouterr().out
    spec_path = project_dir / "work" / "vertex" / "pipeline.json"
    assert f"compiled:      {spec_path}" in out
    assert "models:        gs://my-bucket/serving/towergraph/<version>/" in out
    assert ("registry:      Vertex AI Model Registry, model 'towergraph': a new version per "
            "pushed model") in out
    assert json.loads(spec_path.read_text())["displayName"] == "towergraph"

    assert towergraph("vertex", "compile", "--config", "configs/vertex.yaml",
                      "--output", "pipeline.json") == 0
    spec = json.loads((project_dir / "pipeline.json").read_text())
    assert executor(spec, "Trainer")["container"]["image"] == \
        "us-central1-docker.pkg.dev/my-project/towergraph/towergraph-pipeline:0.1.0"


def test_tfx_cli_compiles_for_vertex(tmp_path):
    """`tfx pipeline compile --engine=vertex --pipeline_path=pipeline/vertex_runner.py`, as a
    user runs it from the repository with the venv active (the CLI runs `pip freeze` to find
    kfp), with settings from $TOWERGRAPH_VERTEX_CONFIG."""
    venv_bin = str(Path(sys.executable).parent)
    env = {key: value for key, value in os.environ.items()
           if key not in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_REGION", "TOWERGRAPH_BUCKET",
                          "TOWERGRAPH_IMAGE", "TOWERGRAPH_SERVICE_ACCOUNT")}
    env.update(PATH=venv_bin + os.pathsep + env.get("PATH", ""), HOME=str(tmp_path / "home"),
               VERTEX_HOME=str(tmp_path / "vertex_home"),
               TOWERGRAPH_VERTEX_CONFIG=str(write_config(tmp_path)))
    command = [os.path.join(venv_bin, "tfx"), "pipeline", "compile", "--engine=vertex",
               "--pipeline_path=pipeline/vertex_runner.py"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Pipeline towergraph compiled successfully." in result.stdout
    spec = json.loads((tmp_path / "compiled" / "pipeline.json").read_text())
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineJob())
    assert sorted({_resolver_of(task) for task in tasks(spec)}) == sorted([
        "CsvExampleGen", "ItemCatalogGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
        "Transform", "production_model", "Trainer", "RetrievalGate", "Pusher", "ModelRegistry"])


def test_runner_file_stops_on_a_bad_config(tmp_path, monkeypatch):
    """What the `tfx` CLI does with pipeline/vertex_runner.py (run it as __main__), in-process:
    a bad config ends it with the message naming the setting and the file, before compiling."""
    path = write_config(tmp_path, "bad.yaml", serving_dir="work/serving")
    monkeypatch.setenv("TOWERGRAPH_VERTEX_CONFIG", str(path))
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(REPO / "pipeline" / "vertex_runner.py"), run_name="__main__")
    assert str(stopped.value.code).startswith("error: invalid Google Cloud config:")
    assert "serving_dir: 'work/serving' must be a gs:// path" in str(stopped.value.code)
    assert f"(from {path})" in str(stopped.value.code)
    assert not (tmp_path / "compiled").exists()
