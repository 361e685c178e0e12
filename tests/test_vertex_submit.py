"""`towergraph vertex submit`: the request it builds, --dry-run, --schedule, and the messages
for the errors of Google Cloud's API.

Vertex AI cannot be reached from the test machine, so `pipeline.vertex.aiplatform_api()` -- the
one function that hands out the google-cloud-aiplatform SDK -- is replaced by FakeAiplatform.
That is the ONLY fake in the suite (tests/test_vertex_registry.py uses it too, for the Model
Registry), and it checks every call against the signatures of the installed SDK, so a request
the real PipelineJob or Model would not accept fails here too.
"""

import inspect
import json
import re
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
from google.api_core import exceptions as api
from google.auth import exceptions as auth

from pipeline import vertex
from pipeline.vertex_config import load_vertex_config
from test_vertex_compile import project_dir  # noqa: F401, F811  (a fixture)
from test_vertex_config import REPO, no_cloud_environment, towergraph, write_config  # noqa: F401

SERVICE_ACCOUNT = "towergraph-pipeline@my-project.iam.gserviceaccount.com"
RUN = "projects/123/locations/europe-west1/pipelineJobs/towergraph-20270101000000"
SCHEDULE = "projects/123/locations/europe-west1/schedules/456"


class FakeAiplatform:
    """Stands in for `google.cloud.aiplatform`: records PipelineJob(...), .submit(...),
    .create_schedule(...), init(...), Model.list(...) and Model.upload(...), binding each to
    the real SDK's signature; the calls named in `fail_on` raise `error` if it is set.

    Its Model Registry (`models`: resource name -> versions, the default one last listed) is
    what Model.list finds by display name and Model.upload adds to: a new model without
    parent_model, else a new version of that model, the default one if is_default_version."""

    def __init__(self, error: Exception = None, fail_on=("submit", "create_schedule")):
        from google.cloud import aiplatform  # the real SDK: only its signatures are used
        self.calls = []
        self.fail_on = fail_on
        self.models = {}
        fake, real = self, aiplatform.PipelineJob

        class PipelineJob:
            def __init__(self, **kwargs):
                inspect.signature(real.__init__).bind(None, **kwargs)
                fake.record("PipelineJob", kwargs)
                self.resource_name = RUN

            def submit(self, **kwargs):
                inspect.signature(real.submit).bind(None, **kwargs)
                fake.record("submit", kwargs)

            def create_schedule(self, **kwargs):
                inspect.signature(real.create_schedule).bind(None, **kwargs)
                fake.record("create_schedule", kwargs)
                return SimpleNamespace(resource_name=SCHEDULE)

        self.PipelineJob = PipelineJob
        self.error = error
        self.Model = self._model_class(aiplatform.Model)

    def init(self, **kwargs):
        from google.cloud import aiplatform
        inspect.signature(aiplatform.init).bind(**kwargs)
        self.record("init", kwargs)

    def _model_class(self, real):
        fake = self

        class Model:
            """One version of a registered model, as the SDK's Model describes it."""

            def __init__(self, resource_name, version_id, upload):
                self.resource_name, self.version_id = resource_name, version_id
                self.display_name, self.labels = upload["display_name"], upload.get("labels")
                self.artifact_uri = upload.get("artifact_uri")
                self.versioned_resource_name = f"{resource_name}@{version_id}"

            @classmethod
            def list(cls, **kwargs):
                inspect.signature(real.list).bind(**kwargs)
                fake.record("Model.list", kwargs)
                name = re.fullmatch(r'display_name="(.*)"', kwargs["filter"]).group(1)
                return [model["default"] for model in fake.models.values()
                        if model["default"].display_name == name]

            @classmethod
            def upload(cls, **kwargs):
                inspect.signature(real.upload).bind(**kwargs)
                fake.record("Model.upload", kwargs)
                parent = kwargs.get("parent_model")
                if parent is None:
                    parent = (f"projects/123/locations/{kwargs['location']}/models/"
                              f"{100 + len(fake.models)}")
                    fake.models[parent] = {"versions": []}
                model = fake.models[parent]  # a KeyError: no such parent model
                version = cls(parent, str(len(model["versions"]) + 1), kwargs)
                model["versions"].append(version)
                if kwargs.get("is_default_version", True) or "default" not in model:
                    model["default"] = version
                return version

        return Model

    def record(self, name, kwargs):
        self.calls.append((name, kwargs))
        if self.error is not None and name in self.fail_on:
            raise self.error


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path)


@pytest.fixture
def template(tmp_path, config_path):
    """A compiled spec (its content does not matter to submit)."""
    path = tmp_path / "spec.json"
    path.write_text("{}")
    return path


def use_fake(monkeypatch, error=None, **options) -> FakeAiplatform:
    fake = FakeAiplatform(error, **options)
    monkeypatch.setattr(vertex, "aiplatform_api", lambda: fake)
    return fake


def forbid_api(monkeypatch):
    def refuse():
        raise AssertionError("--dry-run must not touch the aiplatform SDK")
    monkeypatch.setattr(vertex, "aiplatform_api", refuse)


def test_submit_sends_a_pipeline_job(monkeypatch, capsys, config_path, template):
    fake = use_fake(monkeypatch)
    assert towergraph("vertex", "submit", "--config", str(config_path),
                      "--template", str(template)) == 0
    assert fake.calls == [
        ("PipelineJob", {"display_name": "towergraph", "template_path": str(template),
                         "pipeline_root": "gs://my-bucket/pipeline_root",
                         "project": "my-project", "location": "europe-west1",
                         "enable_caching": True}),
        ("submit", {"service_account": SERVICE_ACCOUNT})]
    out = capsys.readouterr().out
    assert f"created run: {RUN}" in out
    assert ("models land in gs://my-bucket/serving/towergraph/ and in the Vertex AI Model "
            "Registry as 'towergraph'") in out


def test_submit_compiles_first_without_template(monkeypatch, config_path, tmp_path):
    fake = use_fake(monkeypatch)
    assert towergraph("vertex", "submit", "--config", str(config_path), "--no-cache") == 0
    spec = tmp_path / "compiled" / "pipeline.json"
    assert json.loads(spec.read_text())["displayName"] == "towergraph"
    job = fake.calls[0][1]
    assert job["template_path"] == str(spec) and job["enable_caching"] is False


def test_schedule_creates_a_recurring_run(monkeypatch, capsys, config_path, template):
    fake = use_fake(monkeypatch)
    assert towergraph("vertex", "submit", "--config", str(config_path), "--template",
                      str(template), "--schedule", "0 3 * * 1") == 0
    assert [name for name, _ in fake.calls] == ["PipelineJob", "create_schedule"]
    assert fake.calls[0][1]["template_path"] == str(template)
    assert fake.calls[1][1] == {"cron": "0 3 * * 1",
                                "display_name": "towergraph-continuous-training",
                                "service_account": SERVICE_ACCOUNT}
    assert f"created schedule (0 3 * * 1): {SCHEDULE}" in capsys.readouterr().out


def test_without_service_account_vertex_picks_its_default(monkeypatch, tmp_path, template):
    fake = use_fake(monkeypatch)
    path = write_config(tmp_path, "no_sa.yaml", service_account="")
    assert towergraph("vertex", "submit", "--config", str(path), "--template",
                      str(template)) == 0
    assert fake.calls[1] == ("submit", {})


def test_dry_run_prints_the_request_and_sends_nothing(monkeypatch, capsys, config_path,
                                                      template):
    forbid_api(monkeypatch)
    assert towergraph("vertex", "submit", "--config", str(config_path), "--template",
                      str(template), "--dry-run") == 0
    assert json.loads(capsys.readouterr().out) == {
        "pipeline_job": {"display_name": "towergraph", "template_path": str(template),
                         "pipeline_root": "gs://my-bucket/pipeline_root",
                         "project": "my-project", "location": "europe-west1",
                         "enable_caching": True},
        "submit": {"service_account": SERVICE_ACCOUNT}}


def test_dry_run_does_not_import_the_sdk(config_path, template):
    """In a fresh interpreter (TFX, once imported for compiling, brings the SDK along; with
    --template nothing is compiled): the google.cloud.aiplatform SDK is never imported."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from test_vertex_config import towergraph
        code = towergraph("vertex", "submit", "--config", {str(config_path)!r},
                          "--template", {str(template)!r}, "--dry-run",
                          "--schedule", "0 3 * * 1")
        loaded = [name for name in sys.modules if name.startswith("google.cloud.aiplatform")]
        print("LOADED", loaded)
        sys.exit(code)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout
    assert '"create_schedule"' in result.stdout


def test_readme_dry_runs(project_dir, monkeypatch, capsys):  # noqa: F811  (the fixture)
    """`towergraph vertex submit --config configs/vertex.yaml --dry-run [--schedule ...]`
    with the shipped config: compiles, then prints what it would send."""
    forbid_api(monkeypatch)
    assert towergraph("vertex", "submit", "--config", "configs/vertex.yaml", "--dry-run") == 0
    request = json.loads(capsys.readouterr().out)
    assert request["pipeline_job"]["template_path"] == \
        str(project_dir / "work" / "vertex" / "pipeline.json")
    assert request["pipeline_job"]["location"] == "us-central1"
    assert request["submit"] == {
        "service_account": "towergraph-pipeline@my-project.iam.gserviceaccount.com"}

    assert towergraph("vertex", "submit", "--config", "configs/vertex.yaml", "--dry-run",
                      "--schedule", "0 3 * * 1") == 0
    request = json.loads(capsys.readouterr().out)
    assert request["create_schedule"]["cron"] == "0 3 * * 1" and "submit" not in request


def test_the_real_sdk_accepts_the_compiled_spec(monkeypatch, capsys, config_path):
    """The installed SDK's own PipelineJob, built offline (anonymous credentials, no call)
    from exactly what --dry-run prints: it reads the TFX-compiled spec as Vertex AI will."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    forbid_api(monkeypatch)
    assert towergraph("vertex", "submit", "--config", str(config_path), "--no-cache",
                      "--dry-run") == 0
    request = json.loads(capsys.readouterr().out)
    job = aiplatform.PipelineJob(**request["pipeline_job"], credentials=AnonymousCredentials())
    resource = job._gca_resource  # what submit( sends)
    assert resource.display_name == "towergraph"
    assert resource.runtime_config.gcs_output_directory == "gs://my-bucket/pipeline_root"
    spec = resource.pipeline_spec
    assert spec["pipelineInfo"]["name"] == "towergraph"
    assert sorted(spec["root"]["dag"]["tasks"]) == sorted([
        "CsvExampleGen", "ItemCatalogGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
        "Transform", "production_model-model-resolver", "production_model-model-blessing-resolver",
        "Trainer", "RetrievalGate", "Pusher", "ModelRegistry"])
    assert not spec["root"]["dag"]["tasks"]["Trainer"]["cachingOptions"]["enableCache"]


@pytest.mark.parametrize("cron", ["every monday", "0 3 * *", "0 3 * * 1 2024"])
def test_bad_schedule(capsys, config_path, template, cron):
    assert towergraph("vertex", "submit", "--config", str(config_path), "--template",
                      str(template), "--schedule", cron, "--dry-run") == 2
    assert "is not a cron expression" in capsys.readouterr().err


def test_schedule_with_time_zone(monkeypatch, config_path, template):
    fake = use_fake(monkeypatch)
    assert towergraph("vertex", "submit", "--config", str(config_path), "--template",
                      str(template), "--schedule", "TZ=Europe/Berlin 0 3 * * 1") == 0
    assert fake.calls[1][1]["cron"] == "TZ=Europe/Berlin 0 3 * * 1"


def test_missing_template(capsys, config_path, tmp_path):
    assert towergraph("vertex", "submit", "--config", str(config_path), "--template",
                      str(tmp_path / "none.json")) == 2
    assert "towergraph vertex compile --config" in capsys.readouterr().err


# --- API errors become messages a user can act on ------------------------------------------------

def submit_failing(monkeypatch, capsys, config_path, template, error):
    use_fake(monkeypatch, error)
    code = towergraph("vertex", "submit", "--config", str(config_path), "--template",
                      str(template))
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ")
    return err


def test_permission_denied(monkeypatch, capsys, config_path, template):
    err = submit_failing(monkeypatch, capsys, config_path, template,
                         api.PermissionDenied("aiplatform.pipelineJobs.create denied"))
    assert "run `gcloud auth application-default login`" in err.lower()
    assert "roles/aiplatform.user in project my-project, region europe-west1" in err
    assert f"roles/iam.serviceAccountUser on {SERVICE_ACCOUNT}" in err
    assert "aiplatform.pipelineJobs.create denied" in err


def test_unauthenticated(monkeypatch, capsys, config_path, template):
    err = submit_failing(monkeypatch, capsys, config_path, template,
                         api.Unauthenticated("Request had invalid authentication credentials"))
    assert "gcloud auth application-default login" in err and "Unauthenticated" in err


def test_no_credentials_at_all(monkeypatch, capsys, config_path, template):
    err = submit_failing(monkeypatch, capsys, config_path, template,
                         auth.DefaultCredentialsError("Your default credentials were not found"))
    assert "gcloud auth application-default login" in err


def test_quota_exhausted(monkeypatch, capsys, config_path, template):
    err = submit_failing(monkeypatch, capsys, config_path, template,
                         api.ResourceExhausted("Quota exceeded for custom_model_training_cpus"))
    assert "quota exhausted in project my-project, region europe-west1" in err.lower()
    assert "custom_model_training_cpus" in err and "n1-standard-8" in err
    assert "iam-admin/quotas?project=my-project" in err


def test_not_found(monkeypatch, capsys, config_path, template):
    err = submit_failing(monkeypatch, capsys, config_path, template,
                         api.NotFound("Bucket my-bucket not found"))
    assert "project my-project" in err and "region europe-west1" in err
    assert "gcloud storage buckets describe gs://my-bucket" in err
    assert SERVICE_ACCOUNT in err


def test_other_api_error(monkeypatch, capsys, config_path, template):
    err = submit_failing(monkeypatch, capsys, config_path, template,
                         api.InvalidArgument("pipeline spec is invalid"))
    assert "Vertex AI rejected the request" in err and "pipeline spec is invalid" in err


def test_errors_that_are_not_the_apis_are_not_hidden(monkeypatch, config_path, template):
    use_fake(monkeypatch, KeyError("a bug"))
    with pytest.raises(KeyError):
        towergraph("vertex", "submit", "--config", str(config_path), "--template",
                   str(template))


def test_request_json_is_what_send_passes(config_path, template):
    config = load_vertex_config(str(config_path), environ={})
    request = vertex.build_request(config, str(template), schedule="0 3 * * 1")
    printed = json.loads(request.to_json())
    assert printed == {"pipeline_job": request.pipeline_job,
                       "create_schedule": request.create_schedule}
