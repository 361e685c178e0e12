"""Submitting a compiled pipeline to Vertex AI Pipelines, once or on a schedule.

Everything up to the API call is plain data (`Request`), which `vertex submit --dry-run`
prints. `send()` is the one function that talks to Google Cloud and `aiplatform_api()` the one
place that imports the google-cloud-aiplatform SDK; `explain()` turns the API's errors into
messages a user can act on.
"""

import dataclasses
import json
import os
import re
from typing import Any, Dict, Optional

from pipeline.vertex_config import VertexConfig

_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,#-]+$")


@dataclasses.dataclass(frozen=True)
class Request:
    """aiplatform.PipelineJob(**pipeline_job), then .submit(**submit) or
    .create_schedule(**create_schedule)."""

    pipeline_job: Dict[str, Any]
    submit: Optional[Dict[str, Any]] = None
    create_schedule: Optional[Dict[str, Any]] = None

    def to_json(self) -> str:
        parts = {"pipeline_job": self.pipeline_job}
        if self.create_schedule is not None:
            parts["create_schedule"] = self.create_schedule
        else:
            parts["submit"] = self.submit
        return json.dumps(parts, indent=2)


def cron_problem(cron: str) -> Optional[str]:
    """None for a cron expression Vertex AI accepts: 5 fields, optionally after TZ=Zone."""
    fields = cron.split()
    if fields and re.match(r"^(CRON_)?TZ=\S+$", fields[0]):
        fields = fields[1:]
    if len(fields) != 5 or not all(_CRON_FIELD.match(field) for field in fields):
        return (f"--schedule {cron!r} is not a cron expression: expected 5 fields, minute hour "
                f"day-of-month month day-of-week, e.g. \"0 3 * * 1\" (Mondays 03:00 UTC), "
                f"optionally after TZ=Europe/Berlin")
    return None


def build_request(config: VertexConfig, template_path: str, schedule: Optional[str] = None,
                  enable_caching: Optional[bool] = None) -> Request:
    job = {"display_name": config.pipeline_name,
           "template_path": os.path.abspath(template_path),
           "pipeline_root": config.pipeline_root,
           "project": config.project,
           "location": config.region,
           "enable_caching": config.enable_caching if enable_caching is None else enable_caching}
    run_as = {"service_account": config.service_account} if config.service_account else {}
    if schedule:
        return Request(job, create_schedule={
            "cron": schedule, "display_name": f"{config.pipeline_name}-continuous-training",
            **run_as})
    return Request(job, submit=run_as)


def aiplatform_api():
    """The google-cloud-aiplatform SDK (tests replace this: Google Cloud is not reachable)."""
    from google.cloud import aiplatform
    return aiplatform


def send(request: Request) -> str:
    """Sends the request to Vertex AI; returns the resource name of the run or schedule."""
    job = aiplatform_api().PipelineJob(**request.pipeline_job)
    if request.create_schedule is not None:
        return job.create_schedule(**request.create_schedule).resource_name
    job.submit(**request.submit)
    return job.resource_name


def explain(error: Exception, config: VertexConfig) -> Optional[str]:
    """A message for an error of the Google Cloud API, or None for any other error."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth
    where = f"project {config.project}, region {config.region}"
    if isinstance(error, (api.PermissionDenied, api.Unauthenticated,
                          auth.DefaultCredentialsError, auth.RefreshError)):
        acting = (f" and roles/iam.serviceAccountUser on {config.service_account}"
                  if config.service_account else "")
        return (f"Google Cloud refused the credentials ({type(error).__name__}: {error}).\n"
                f"Run `gcloud auth application-default login` (or set "
                f"GOOGLE_APPLICATION_CREDENTIALS to a key file), and check that your account "
                f"has roles/aiplatform.user in {where}{acting}, and that the Vertex AI API is "
                f"enabled: gcloud services enable aiplatform.googleapis.com "
                f"--project {config.project}")
    if isinstance(error, api.ResourceExhausted):
        return (f"Vertex AI quota exhausted in {where} ({error}).\nSee the quotas page "
                f"(https://console.cloud.google.com/iam-admin/quotas?project={config.project}) "
                f"for the one named above, e.g. custom training CPUs of "
                f"{config.trainer.machine_type} or concurrent pipeline runs: wait for running "
                f"jobs, request more quota, or use another region or a smaller machine.")
    if isinstance(error, api.NotFound):
        return (f"Vertex AI could not find something it needs ({error}).\nCheck that project "
                f"{config.project} exists with the Vertex AI API enabled, that region "
                f"{config.region} offers Vertex AI Pipelines, that bucket gs://{config.bucket} "
                f"exists (gcloud storage buckets describe gs://{config.bucket})"
                + (f", and that service account {config.service_account} exists"
                   if config.service_account else "") + ".")
    if isinstance(error, api.GoogleAPICallError):
        return f"Vertex AI rejected the request in {where}: {type(error).__name__}: {error}"
    return None
