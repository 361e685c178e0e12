"""Google Cloud settings (pipeline/vertex_config.py): configs/vertex.yaml, environment overrides,
and one test per validation error, each of which must name the setting and where its value
came from. No TFX import: these run in a second.

Also home of the helpers the other test_vertex_* modules share (write_config, towergraph).
"""

import argparse
from pathlib import Path

import pytest
import yaml

from pipeline.vertex_cli import add_vertex_command
from pipeline.vertex_config import (DEFAULT_CONFIG, ENV_OVERRIDES, VertexConfigError,
                                    load_vertex_config)

REPO = Path(__file__).resolve().parents[1]

VALID = {
    "project": "my-project",
    "region": "europe-west1",
    "bucket": "my-bucket",
    "service_account": "towergraph-pipeline@my-project.iam.gserviceaccount.com",
    "pipeline": {"pipeline_name": "towergraph", "model": {"epochs": 2}},
}


def write_config(tmp_path: Path, name: str = "vertex.yaml", **changes) -> Path:
    """VALID with `changes` (a dict value updates a section), written as YAML under tmp_path."""
    values = {key: dict(value) if isinstance(value, dict) else value
              for key, value in VALID.items()}
    values["compiled_path"] = str(tmp_path / "compiled" / "pipeline.json")
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key].update(value)
        elif value is None:
            values.pop(key, None)
        else:
            values[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def towergraph(*argv: str) -> int:
    """`towergraph vertex ...` in-process, registered as pipeline/cli.py registers it."""
    parser = argparse.ArgumentParser(prog="towergraph")
    add_vertex_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(autouse=True)
def no_cloud_environment(monkeypatch):
    """The developer's own GOOGLE_CLOUD_PROJECT etc. must not leak into the tests."""
    for variable in [*ENV_OVERRIDES.values(), "TOWERGRAPH_VERTEX_CONFIG"]:
        monkeypatch.delenv(variable, raising=False)


def line_of(path, start: str) -> int:
    """The number of the first line of the file at `path` that starts with `start`."""
    lines = Path(path).read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.startswith(start))


def problems_of(path, environ=None):
    with pytest.raises(VertexConfigError) as caught:
        load_vertex_config(str(path), environ=environ or {})
    return [str(problem) for problem in caught.value.problems]


def only_problem(path, environ=None) -> str:
    problems = problems_of(path, environ)
    assert len(problems) == 1, problems
    return problems[0]


# --- a valid config ------------------------------------------------------------------------------

def test_valid_config_derives_paths_image_and_the_pipeline_settings(tmp_path):
    config = load_vertex_config(str(write_config(tmp_path)), environ={})
    assert config.image == ("europe-west1-docker.pkg.dev/my-project/towergraph/"
                            "towergraph-pipeline:0.1.0")
    assert config.pipeline_root == "gs://my-bucket/pipeline_root"
    # The Pusher writes where the k8s gke overlay's TF Serving reads (MODEL_BASE_PATH).
    assert config.pipeline.model_base_path == "gs://my-bucket/serving/towergraph"
    assert config.pipeline.interactions_dir == "gs://my-bucket/data/interactions"
    assert config.pipeline.root == config.pipeline_root
    assert config.pipeline.model.epochs == 2
    # Beam's own runner, named (not the DirectRunner's Prism attempt); the image holds the
    # workers' dependencies (TFX packs none of its own).
    assert config.beam_pipeline_args() == ["--runner=FnApiRunner",
                                           "--direct_running_mode=multi_processing",
                                           "--direct_num_workers=0",
                                           f"--sdk_container_image={config.image}"]


def test_dataflow_beam_args(tmp_path):
    config = load_vertex_config(str(write_config(
        tmp_path, dataflow={"enabled": True, "max_num_workers": 5,
                            "extra_args": ["--subnetwork=regions/europe-west1/subnetworks/x"]})),
        environ={})
    assert config.beam_pipeline_args() == [
        "--runner=DataflowRunner", "--project=my-project", "--region=europe-west1",
        "--temp_location=gs://my-bucket/dataflow/tmp",
        "--staging_location=gs://my-bucket/dataflow/staging", "--machine_type=n1-standard-4",
        "--max_num_workers=5", "--experiments=use_runner_v2",
        f"--sdk_container_image={config.image}",
        "--service_account_email=towergraph-pipeline@my-project.iam.gserviceaccount.com",
        "--subnetwork=regions/europe-west1/subnetworks/x"]


def test_trainer_job_spec_with_accelerator_and_workers(tmp_path):
    config = load_vertex_config(str(write_config(tmp_path, trainer={
        "machine_type": "n1-highmem-8", "replica_count": 3,
        "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1})), environ={})
    machine = {"machine_type": "n1-highmem-8", "accelerator_type": "NVIDIA_TESLA_T4",
               "accelerator_count": 1}
    container = {"image_uri": config.image}
    assert config.trainer_job_spec() == {
        "worker_pool_specs": [  # Vertex AI wants a single chief first, then the workers
            {"machine_spec": machine, "replica_count": 1, "container_spec": container},
            {"machine_spec": machine, "replica_count": 2, "container_spec": container}],
        "service_account": "towergraph-pipeline@my-project.iam.gserviceaccount.com"}


def test_environment_overrides_the_file(tmp_path):
    path = write_config(tmp_path)
    config = load_vertex_config(str(path), environ={
        "GOOGLE_CLOUD_PROJECT": "other-project", "GOOGLE_CLOUD_REGION": "us-east1",
        "TOWERGRAPH_BUCKET": "gs://other-bucket/",
        "TOWERGRAPH_IMAGE": "us-east1-docker.pkg.dev/other-project/r/img:2",
        "TOWERGRAPH_SERVICE_ACCOUNT": "sa-one@other-project.iam.gserviceaccount.com"})
    assert (config.project, config.region, config.bucket) == ("other-project", "us-east1",
                                                              "other-bucket")
    assert config.image == "us-east1-docker.pkg.dev/other-project/r/img:2"
    assert config.service_account == "sa-one@other-project.iam.gserviceaccount.com"
    assert config.data_dir == "gs://other-bucket/data"


def test_config_file_from_the_environment_variable(tmp_path):
    path = write_config(tmp_path, project="env-file-project")
    config = load_vertex_config(environ={"TOWERGRAPH_VERTEX_CONFIG": str(path)})
    assert config.project == "env-file-project" and config.source == str(path)


def test_shipped_config_needs_only_project_and_bucket(tmp_path):
    """configs/vertex.yaml as shipped: exactly project and bucket are missing (nothing derived
    from them is reported too); given those, it is valid."""
    problems = problems_of(DEFAULT_CONFIG)
    assert len(problems) == 2, problems
    assert problems[0].startswith("project is not set") and "GOOGLE_CLOUD_PROJECT" in problems[0]
    assert problems[1].startswith("bucket is not set") and "TOWERGRAPH_BUCKET" in problems[1]
    assert all(str(DEFAULT_CONFIG) in problem for problem in problems)
    config = load_vertex_config(str(DEFAULT_CONFIG), environ={
        "GOOGLE_CLOUD_PROJECT": "my-project", "TOWERGRAPH_BUCKET": "my-bucket"})
    assert config.service_account == "towergraph-pipeline@my-project.iam.gserviceaccount.com"
    assert config.pipeline.model_base_path == "gs://my-bucket/serving/towergraph"
    assert not config.dataflow.enabled and config.trainer.replica_count == 1


def test_registry_defaults_to_the_model_name_and_vertex_tf_serving_image(tmp_path):
    config = load_vertex_config(str(write_config(tmp_path)), environ={})
    assert config.registry.enabled
    assert config.registry_parameters() == {
        "project": "my-project", "region": "europe-west1", "display_name": "towergraph",
        "serving_image": "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"}
    config = load_vertex_config(str(write_config(
        tmp_path, pipeline={"model_name": "books"},
        registry={"serving_image": "{region}-docker.pkg.dev/{project}/serving/tfs:2.16.1"})),
        environ={})
    assert config.registry.display_name == "books"
    assert config.registry.serving_image == \
        "europe-west1-docker.pkg.dev/my-project/serving/tfs:2.16.1"


def test_registry_disabled(tmp_path):
    """Off: no registry step, and its settings are not checked."""
    config = load_vertex_config(str(write_config(tmp_path, registry={
        "enabled": False, "serving_image": "tfs"})), environ={})
    assert config.registry_parameters() is None


# --- one test per validation error --------------------------------------------------------------

@pytest.mark.parametrize("setting,variable", [("project", "GOOGLE_CLOUD_PROJECT"),
                                              ("region", "GOOGLE_CLOUD_REGION"),
                                              ("bucket", "TOWERGRAPH_BUCKET")])
def test_missing_project_region_or_bucket(tmp_path, setting, variable):
    path = write_config(tmp_path, **{setting: ""})
    problem = only_problem(path)
    assert problem.startswith(f"{setting} is not set")
    assert str(path) in problem and variable in problem


@pytest.mark.parametrize("setting", ["pipeline_root", "data_dir", "serving_dir"])
def test_path_that_is_not_gcs(tmp_path, setting):
    path = write_config(tmp_path, **{setting: "work/run"})
    problem = only_problem(path)
    assert problem.startswith(f"{setting}: 'work/run' must be a gs:// path")
    assert problem.endswith(f"(from {path}) at line {line_of(path, setting + ':')}")


def test_dataflow_location_that_is_not_gcs(tmp_path):
    path = write_config(tmp_path, dataflow={"enabled": True, "temp_location": "/tmp/df"})
    problem = only_problem(path)
    assert problem.startswith("dataflow.temp_location: '/tmp/df' must be a gs:// path")
    assert problem.endswith(f"(from {path}) at line {line_of(path, '  temp_location:')}")


def test_image_without_registry_host(tmp_path):
    path = write_config(tmp_path, image="towergraph-pipeline:0.1.0")
    problem = only_problem(path)
    assert problem.startswith("image: 'towergraph-pipeline:0.1.0' has no registry host")
    assert f"(from {path}) at line " in problem


def test_image_without_tag(tmp_path):
    path = write_config(tmp_path, image="europe-west1-docker.pkg.dev/my-project/towergraph/tg")
    assert only_problem(path).startswith(
        "image: 'europe-west1-docker.pkg.dev/my-project/towergraph/tg' has no tag")


def test_image_from_the_environment_names_the_variable(tmp_path):
    problem = only_problem(write_config(tmp_path), environ={"TOWERGRAPH_IMAGE": "tg:1"})
    assert "has no registry host" in problem
    assert problem.endswith("(from environment variable TOWERGRAPH_IMAGE)")


def test_image_by_digest_is_accepted(tmp_path):
    image = "europe-west1-docker.pkg.dev/my-project/towergraph/tg@sha256:" + "a" * 64
    assert load_vertex_config(str(write_config(tmp_path, image=image)), environ={}).image == image


@pytest.mark.parametrize("machine", ["n1standard8", "large", "N1-STANDARD-8", "n1-standard"])
def test_unknown_trainer_machine_type_format(tmp_path, machine):
    path = write_config(tmp_path, trainer={"machine_type": machine})
    problem = only_problem(path)
    assert problem.startswith(f"trainer.machine_type: unknown machine type format {machine!r}")
    assert f"(from {path}) at line " in problem


def test_unknown_dataflow_machine_type_format(tmp_path):
    path = write_config(tmp_path, dataflow={"enabled": True, "machine_type": "big"})
    assert only_problem(path).startswith("dataflow.machine_type: unknown machine type format")


@pytest.mark.parametrize("machine", ["n1-standard-8", "e2-medium", "a2-highgpu-1g",
                                     "c3-highcpu-22", "ct5lp-hightpu-4t"])
def test_machine_types_vertex_offers_are_accepted(tmp_path, machine):
    load_vertex_config(str(write_config(tmp_path, trainer={"machine_type": machine})), environ={})


def test_accelerator_without_count(tmp_path):
    path = write_config(tmp_path, trainer={"accelerator_type": "NVIDIA_TESLA_T4"})
    problem = only_problem(path)
    assert problem.startswith("trainer.accelerator_count: accelerator_type NVIDIA_TESLA_T4 "
                              "needs accelerator_count")
    assert problem.endswith("(from the default)")


def test_accelerator_count_without_type(tmp_path):
    path = write_config(tmp_path, trainer={"accelerator_count": 2})
    assert only_problem(path).startswith("trainer.accelerator_type: accelerator_count is 2 but "
                                         "no accelerator_type is set")


def test_unknown_accelerator(tmp_path):
    path = write_config(tmp_path, trainer={"accelerator_type": "NVIDIA_T4",
                                           "accelerator_count": 1})
    problem = only_problem(path)
    assert problem.startswith("trainer.accelerator_type: unknown accelerator 'NVIDIA_T4'")
    assert "NVIDIA_TESLA_T4" in problem


def test_replica_count_below_one(tmp_path):
    assert only_problem(write_config(tmp_path, trainer={"replica_count": 0})).startswith(
        "trainer.replica_count: must be at least 1")


def test_registry_serving_image_without_registry_host(tmp_path):
    path = write_config(tmp_path, registry={"serving_image": "tensorflow/serving:2.16.1"})
    problem = only_problem(path)
    assert problem.startswith("registry.serving_image: 'tensorflow/serving:2.16.1' has no "
                              "registry host: expected REGISTRY/PATH:TAG such as "
                              "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest")
    assert problem.endswith(f"(from {path}) at line {line_of(path, '  serving_image:')}")


@pytest.mark.parametrize("name", ["x" * 129, " towergraph"])
def test_registry_display_name_vertex_rejects(tmp_path, name):
    path = write_config(tmp_path, registry={"display_name": name})
    problem = only_problem(path)
    assert problem.startswith(f"registry.display_name: {name!r} is not a model display name")
    assert f"(from {path}) at line " in problem


def test_registry_wrong_type(tmp_path):
    path = write_config(tmp_path, registry={"enabled": "yes"})
    assert only_problem(path).startswith("registry.enabled: expected true or false, got 'yes'")


def test_region_that_is_a_zone(tmp_path):
    assert only_problem(write_config(tmp_path, region="europe-west1-b")).startswith(
        "region: 'europe-west1-b' is not a region")


def test_service_account_that_is_not_an_email(tmp_path):
    assert only_problem(write_config(tmp_path, service_account="towergraph")).startswith(
        "service_account: 'towergraph' is not a service account email")


def test_unknown_setting(tmp_path):
    path = write_config(tmp_path, projet="typo")
    problem = only_problem(path)
    assert problem.startswith("projet: unknown setting; known: project, region, bucket")
    assert problem.endswith(f"(from {path}) at line {line_of(path, 'projet:')}")


def test_wrong_type(tmp_path):
    path = write_config(tmp_path, trainer={"replica_count": "two"})
    assert only_problem(path) == (f"trainer.replica_count: expected an integer, got 'two' "
                                  f"(from {path}) at line {line_of(path, '  replica_count:')}")


def test_unknown_placeholder(tmp_path):
    problem = only_problem(write_config(tmp_path, data_dir="gs://{bukket}/data"))
    assert problem.startswith("data_dir: unknown placeholder(s) ['bukket']")


def test_paths_in_the_pipeline_section(tmp_path):
    path = write_config(tmp_path, pipeline={"data_dir": "work/data"})
    assert only_problem(path).startswith("pipeline.data_dir: set the Cloud Storage paths at "
                                         "the top level")


def test_bad_pipeline_setting(tmp_path):
    path = write_config(tmp_path, pipeline={"eval_percent": 0})
    problem = only_problem(path)
    assert problem.startswith("pipeline.eval_percent: must be between 1 and 99, not 0")
    assert problem.endswith(f"(from {path}) at line {line_of(path, '  eval_percent:')}")


def test_pipeline_name_vertex_rejects(tmp_path):
    assert only_problem(write_config(tmp_path, pipeline={"pipeline_name": "Tower_Graph"})) \
        .startswith("pipeline.pipeline_name: Vertex AI needs lowercase letters")


def test_every_problem_is_reported_at_once(tmp_path):
    path = write_config(tmp_path, region="", data_dir="data",
                        trainer={"machine_type": "huge", "accelerator_count": 1})
    problems = problems_of(path)
    assert [problem.split(" ")[0].rstrip(":") for problem in problems] == [
        "region", "data_dir", "trainer.machine_type", "trainer.accelerator_type"]
    # Derived from the missing region, the image is not reported as well.
    assert not any(problem.startswith("image") for problem in problems)


def test_missing_file(tmp_path):
    problem = only_problem(tmp_path / "nowhere.yaml")
    assert "nowhere.yaml does not exist" in problem and "TOWERGRAPH_VERTEX_CONFIG" in problem


def test_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("project: [unclosed\n")
    assert only_problem(path).startswith(f"{path} is not valid YAML")


def test_cli_reports_config_errors_with_exit_code_2(tmp_path, capsys):
    path = write_config(tmp_path, bucket="")
    assert towergraph("vertex", "compile", "--config", str(path)) == 2
    assert towergraph("vertex", "submit", "--config", str(path), "--dry-run") == 2
    err = capsys.readouterr().err
    assert err.count("error: invalid Google Cloud config:") == 2
    assert "bucket is not set" in err


# --- the one loader (trainer/settings.py): strict types, sections, every problem at once --------

@pytest.mark.parametrize("section,value,message", [
    ({"trainer": {"replica_count": 2.5}}, None, "trainer.replica_count: expected an integer, got 2.5"),
    ({"trainer": {"replica_count": True}}, None, "trainer.replica_count: expected an integer, got true"),
    ({"enable_caching": "yes"}, None, "enable_caching: expected true or false, got 'yes'"),
    ({"steps": {"cpu_limit": float("nan")}}, None, "steps.cpu_limit: expected a finite number"),
    ({"dataflow": {"extra_args": "--a"}}, None, "dataflow.extra_args: expected a list of text"),
    ({"trainer": ["n1-standard-8"]}, None, "trainer: expected a mapping of settings"),
])
def test_strict_types(tmp_path, section, value, message):
    problem = only_problem(write_config(tmp_path, **section))
    assert problem.startswith(message), problem


def test_pipeline_section_types_name_the_nested_setting_and_line(tmp_path):
    path = write_config(tmp_path, pipeline={"model": {"epochs": "ten"}})
    assert only_problem(path) == (f"pipeline.model.epochs: expected an integer, got 'ten' "
                                  f"(from {path}) at line {line_of(path, '    epochs:')}")


def test_type_problems_and_validation_problems_together(tmp_path):
    path = write_config(tmp_path, region="europe-west1-b", trainer={"replica_count": "two"},
                        pipeline={"top_items": -1, "model": {"embedding_dim": True}})
    assert [problem.split(":")[0] for problem in problems_of(path)] == [
        "trainer.replica_count", "pipeline.model.embedding_dim", "region",
        "pipeline.top_items"]


def test_a_bad_bucket_type_is_reported_once(tmp_path):
    """Settings derived from a bucket of the wrong type are not reported too."""
    assert only_problem(write_config(tmp_path, bucket=12)).startswith(
        "bucket: expected text, got 12")


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("project: my-project\ntrainer:\n  machine_type: [n1\n")
    assert only_problem(path).startswith(f"{path} is not valid YAML: line 4, column 1: ")


def test_a_list_file(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- project\n")
    assert only_problem(path) == f"{path}: expected a mapping of settings (name: value lines), " \
                                 f"got list"


def test_cli_reports_yaml_and_type_errors_with_exit_code_2(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("project: my-project\n  region: x\n")
    assert towergraph("vertex", "compile", "--config", str(broken)) == 2
    path = write_config(tmp_path, trainer={"replica_count": 2.5})
    assert towergraph("vertex", "submit", "--config", str(path), "--dry-run") == 2
    err = capsys.readouterr().err
    assert f"{broken} is not valid YAML: line 2, column 9: " in err
    assert (f"trainer.replica_count: expected an integer, got 2.5 (from {path}) at line "
            f"{line_of(path, '  replica_count:')}") in err
    assert "Traceback" not in err
