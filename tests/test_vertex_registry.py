"""pipeline/registry.py: the ModelRegistry step of the Vertex pipeline, its executor run
directly (no pipeline) on a Pusher's and a gate's artifacts, and its place in the compiled spec.

Google Cloud cannot be reached from the test machine: `pipeline.vertex.aiplatform_api()` hands
out FakeAiplatform (tests/test_vertex_submit.py), the suite's one stand-in for Google Cloud,
which binds every init / Model.list / Model.upload call to the installed SDK's signature and
keeps a small Model Registry. Nothing else is mocked: the artifacts, the metrics file and the
TFX executor are real.
"""

import json
import logging
import re

import pytest
from google.api_core import exceptions as api

from pipeline import vertex
from pipeline.vertex_config import DEFAULT_SERVING_IMAGE, load_vertex_config
from test_vertex_compile import compiled, executor, tasks
from test_vertex_config import no_cloud_environment, write_config  # noqa: F401
from test_vertex_submit import FakeAiplatform

PROJECT, REGION = "my-project", "europe-west1"
DESTINATION = "gs://my-bucket/serving/towergraph/1712345678"
METRICS = {"model": {"recall@10": 0.18123, "recall@100": 0.5},
           "popularity": {"recall@10": 0.1, "recall@100": 0.4}, "blessed": True}
PARAMETERS = {"project": PROJECT, "region": REGION, "display_name": "towergraph",
              "serving_image": DEFAULT_SERVING_IMAGE}
LABELS = {"recall_at_10": "0_1812", "recall_at_100": "0_5000", "pushed_version": "1712345678"}


@pytest.fixture
def fake(monkeypatch):
    fake = FakeAiplatform()
    monkeypatch.setattr(vertex, "aiplatform_api", lambda: fake)
    return fake


def run_registry(tmp_path, pushed=True, destination=DESTINATION, metrics=None, **parameters):
    """ModelRegistry's executor on a PushedModel and the gate's ModelEvaluation."""
    from tfx.types.standard_artifacts import ModelEvaluation, PushedModel

    from pipeline.gate import METRICS_FILE
    from pipeline.registry import ModelRegistry
    pushed_model, evaluation, registered = PushedModel(), ModelEvaluation(), PushedModel()
    pushed_model.uri = str(tmp_path / "pushed_model")
    pushed_model.set_int_custom_property("pushed", int(pushed))
    if pushed:  # what the Pusher records
        pushed_model.set_string_custom_property("pushed_destination", destination)
        pushed_model.set_string_custom_property("pushed_version", destination.rsplit("/")[-1])
    evaluation.uri = str(tmp_path / "evaluation")
    (tmp_path / "evaluation").mkdir(parents=True, exist_ok=True)
    (tmp_path / "evaluation" / METRICS_FILE).write_text(json.dumps(metrics or METRICS))
    registered.uri = str(tmp_path / "registered")
    ModelRegistry.EXECUTOR_SPEC.executor_class().Do(
        {"pushed_model": [pushed_model], "evaluation": [evaluation]},
        {"registered": [registered]}, {**PARAMETERS, **parameters})
    return registered


def test_first_upload_creates_the_model(tmp_path, fake):
    registered = run_registry(tmp_path)
    assert [name for name, _ in fake.calls] == ["init", "Model.list", "Model.upload"]
    assert fake.calls[0][1] == {"project": PROJECT, "location": REGION}
    assert fake.calls[1][1] == {"filter": 'display_name="towergraph"', "order_by": "create_time",
                                "project": PROJECT, "location": REGION}
    upload = fake.calls[2][1]
    assert upload["parent_model"] is None and upload["is_default_version"] is True
    assert upload["display_name"] == "towergraph"
    assert upload["artifact_uri"] == DESTINATION
    assert upload["serving_container_image_uri"] == DEFAULT_SERVING_IMAGE
    assert (upload["project"], upload["location"]) == (PROJECT, REGION)
    assert upload["labels"] == LABELS
    assert "recall@10 0.1812" in upload["version_description"]
    model = "projects/123/locations/europe-west1/models/100"
    # The run shows where the model went.
    assert registered.get_int_custom_property("pushed") == 1
    assert registered.get_string_custom_property("pushed_destination") == f"{model}@1"
    assert registered.get_string_custom_property("registry_model") == model
    assert registered.get_string_custom_property("registry_version_id") == "1"
    assert json.loads(registered.get_string_custom_property("registry_labels")) == LABELS
    assert registered.get_string_custom_property("registry_console") == (
        "https://console.cloud.google.com/vertex-ai/models/locations/europe-west1/models/100/"
        "versions/1?project=my-project")


def test_next_upload_is_a_new_default_version_of_the_same_model(tmp_path, fake):
    run_registry(tmp_path / "first")
    other = {"display_name": "other-model"}
    run_registry(tmp_path / "other", **other)  # another model's versions stay apart
    fake.calls.clear()
    second = "gs://my-bucket/serving/towergraph/1712999999"
    registered = run_registry(tmp_path / "second", destination=second,
                              metrics={"model": {"recall@10": 0.2, "recall@100": 0.6}})
    upload = fake.calls[-1][1]
    model = "projects/123/locations/europe-west1/models/100"
    assert upload["parent_model"] == model and upload["is_default_version"] is True
    assert upload["artifact_uri"] == second
    assert upload["labels"] == {"recall_at_10": "0_2000", "recall_at_100": "0_6000",
                                "pushed_version": "1712999999"}
    assert registered.get_string_custom_property("pushed_destination") == f"{model}@2"
    # The registry: one model with two versions, the new one its default.
    versions = fake.models[model]["versions"]
    assert [version.artifact_uri for version in versions] == [DESTINATION, second]
    assert fake.models[model]["default"] is versions[-1]
    assert len(fake.models) == 2


def test_a_model_that_was_not_pushed_is_not_uploaded(tmp_path, fake, caplog):
    with caplog.at_level(logging.INFO):
        registered = run_registry(tmp_path, pushed=False)
    assert fake.calls == []
    assert registered.get_int_custom_property("pushed") == 0
    assert "not pushed" in registered.get_string_custom_property("registry_skipped")
    assert "the model was not pushed (the gate did not bless it): nothing registered" in \
        caplog.text


def test_an_upload_refused_fails_the_step_naming_model_project_and_region(tmp_path,
                                                                           monkeypatch):
    from pipeline.registry import RegistryError
    fake = FakeAiplatform(api.PermissionDenied("aiplatform.models.upload denied"),
                          fail_on=("Model.upload",))
    monkeypatch.setattr(vertex, "aiplatform_api", lambda: fake)
    with pytest.raises(RegistryError) as failed:
        run_registry(tmp_path)
    message = str(failed.value)
    assert message.startswith(
        f"Vertex AI Model Registry: could not create model 'towergraph' in project {PROJECT}, "
        f"region {REGION} from {DESTINATION}: PermissionDenied: ")
    assert "aiplatform.models.upload denied" in message
    assert f"roles/aiplatform.user in project {PROJECT}" in message
    assert isinstance(failed.value.__cause__, api.PermissionDenied)


def test_a_failed_look_up_fails_the_step_too(tmp_path, monkeypatch):
    from pipeline.registry import RegistryError
    fake = FakeAiplatform(api.NotFound("Location europe-west1 not found"),
                          fail_on=("Model.list",))
    monkeypatch.setattr(vertex, "aiplatform_api", lambda: fake)
    with pytest.raises(RegistryError) as failed:
        run_registry(tmp_path)
    message = str(failed.value)
    assert message.startswith(f"Vertex AI Model Registry: could not look up model 'towergraph' "
                              f"in project {PROJECT}, region {REGION}: NotFound: ")
    assert f"region {REGION} offers it" in message
    assert [name for name, _ in fake.calls] == ["init", "Model.list"]


def test_errors_that_are_not_the_apis_are_not_reworded(tmp_path, monkeypatch):
    fake = FakeAiplatform(KeyError("a bug"), fail_on=("Model.upload",))
    monkeypatch.setattr(vertex, "aiplatform_api", lambda: fake)
    with pytest.raises(KeyError):
        run_registry(tmp_path)


def test_labels_follow_vertex_rules():
    """Keys: a lowercase letter, then lowercase letters, digits, _ and -; values: those
    characters; both at most 63 characters."""
    from pipeline.registry import metric_labels
    labels = metric_labels({"Recall@10": 0.123456, "10th": 3, "x" * 80: 0.5, "ndcg.5": -1.0})
    assert labels["recall_at_10"] == "0_1235" and labels["m_10th"] == "3"
    assert labels["ndcg_5"] == "-1_0000" and labels["x" * 63] == "0_5000"
    for key, value in labels.items():
        assert re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key), key
        assert re.fullmatch(r"[a-z0-9_-]{0,63}", value), value


# --- the compiled spec ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    """A spec compiled with a registry display name and serving image of its own."""
    return compiled(tmp_path_factory.mktemp("registry"), registry={
        "display_name": "TowerGraph retrieval",
        "serving_image": "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"})


@pytest.mark.slow  # compiles the pipeline, as tests/test_vertex_compile.py (slow) does
def test_spec_runs_the_registry_after_the_pusher_with_the_configured_parameters(spec):
    config, spec = spec
    task = tasks(spec)["ModelRegistry"]
    assert sorted(task["dependentTasks"]) == ["Pusher", "RetrievalGate"]
    assert task["inputs"]["artifacts"] == {
        "pushed_model": {"taskOutputArtifact": {"outputArtifactKey": "pushed_model",
                                                "producerTask": "Pusher"}},
        "evaluation": {"taskOutputArtifact": {"outputArtifactKey": "evaluation",
                                              "producerTask": "RetrievalGate"}}}
    parameters = {name: value["runtimeValue"]["constantValue"]["stringValue"]
                  for name, value in task["inputs"]["parameters"].items()}
    assert parameters == {
        "project": "my-project", "region": "europe-west1",
        "display_name": "TowerGraph retrieval",
        "serving_image": "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"}
    container = executor(spec, "ModelRegistry")["container"]
    assert container["args"][:2] == ["--executor_class_path",
                                     "pipeline.registry.ModelRegistry_Executor"]
    assert container["image"] == config.image
    # Nothing runs after it.
    assert not [name for name, other in tasks(spec).items()
                if "ModelRegistry" in other.get("dependentTasks", [])]


def test_registry_disabled_leaves_the_step_out(tmp_path):
    from pipeline.vertex_runner import build_pipeline
    config = load_vertex_config(str(write_config(tmp_path, registry={"enabled": False})),
                                environ={})
    assert config.registry_parameters() is None
    assert [component.id for component in build_pipeline(config).components][-1] == "Pusher"
