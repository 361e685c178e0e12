"""`towergraph vertex compile|submit`: the pipeline on Google Cloud (Vertex AI Pipelines).

    towergraph vertex compile --config configs/vertex.yaml [--output pipeline.json]
    towergraph vertex submit --config configs/vertex.yaml [--dry-run] [--schedule "0 3 * * 1"]

Exit codes: 0 done, 1 Google Cloud refused or failed, 2 a configuration or usage error.
"""

import argparse
import os
import sys
from typing import Optional

from pipeline import vertex  # the request is plain data; only vertex.send() needs the SDK
from pipeline.vertex_config import (CONFIG_ENV, VertexConfig, VertexConfigError, config_path,
                                    load_vertex_config)


def add_vertex_command(subparsers) -> None:
    group = subparsers.add_parser(
        "vertex", help="run the pipeline on Google Cloud (Vertex AI Pipelines)",
        description="Compiles the pipeline for Vertex AI Pipelines and submits it. Settings: "
                    f"--config, else ${CONFIG_ENV}, else configs/vertex.yaml.")
    commands = group.add_subparsers(dest="vertex_command", required=True)

    compile_ = commands.add_parser(
        "compile", help="write the Vertex AI pipeline spec (JSON); works offline",
        description="Validates the config, then compiles the pipeline with "
                    "KubeflowV2DagRunner. Nothing is sent to Google Cloud.")
    _add_config_flag(compile_)
    compile_.add_argument("--output", help="spec file to write (default: compiled_path)")
    compile_.set_defaults(func=_compile)

    submit = commands.add_parser(
        "submit", help="compile, then start a run (or a schedule) on Vertex AI Pipelines",
        description="Compiles the pipeline (unless --template), then creates a Vertex AI "
                    "PipelineJob and submits it as the config's service account.")
    _add_config_flag(submit)
    submit.add_argument("--template", help="submit this compiled spec instead of compiling")
    submit.add_argument("--dry-run", action="store_true",
                        help="print the request as JSON and send nothing")
    submit.add_argument("--schedule", metavar="CRON",
                        help='create a recurring run instead, e.g. "0 3 * * 1" (Mondays '
                             '03:00 UTC): continuous training on new data')
    submit.add_argument("--no-cache", action="store_true", help="re-run every step")
    submit.set_defaults(func=_submit)


def _add_config_flag(parser) -> None:
    parser.add_argument("--config", help=f"YAML file (default: ${CONFIG_ENV} or "
                                         f"configs/vertex.yaml)")


def _load(path: Optional[str]) -> Optional[VertexConfig]:
    try:
        return load_vertex_config(path)
    except VertexConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def _compile_to(config: VertexConfig, output: Optional[str]) -> str:
    # Imported here: TFX and TensorFlow take seconds to import; a config error does not wait.
    from pipeline.vertex_runner import compile_pipeline
    return compile_pipeline(config, output)


def _compile(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    path = _compile_to(config, args.output)
    trainer = config.trainer
    machines = f"{trainer.machine_type} x{trainer.replica_count}"
    if trainer.accelerator_type:
        machines += f" + {trainer.accelerator_count} {trainer.accelerator_type}"
    for label, value in [
            ("compiled", path), ("config", config.source), ("image", config.image),
            ("pipeline_root", config.pipeline_root),
            ("data", f"{config.pipeline.interactions_dir}, {config.pipeline.data_dir}/items.csv"),
            ("models", f"{config.pipeline.model_base_path}/<version>/"),
            ("trainer", f"Vertex AI custom job on {machines}"),
            ("beam", "Dataflow" if config.dataflow.enabled else "DirectRunner in each step"),
            ("registry", _registry(config))]:
        print(f"{label + ':':15}{value}")
    return 0


def _registry(config: VertexConfig) -> str:
    if not config.registry.enabled:
        return "off (registry.enabled: false)"
    return (f"Vertex AI Model Registry, model {config.registry.display_name!r}: a new version "
            f"per pushed model")


def _submit(args: argparse.Namespace) -> int:
    if args.schedule and vertex.cron_problem(args.schedule):
        print(f"error: {vertex.cron_problem(args.schedule)}", file=sys.stderr)
        return 2
    if args.template and not os.path.isfile(args.template):
        print(f"error: --template {args.template} does not exist; create it with "
              f"`towergraph vertex compile --config {config_path(args.config)}`",
              file=sys.stderr)
        return 2
    config = _load(args.config)
    if config is None:
        return 2
    template = args.template or _compile_to(config, None)
    request = vertex.build_request(config, template, schedule=args.schedule,
                                   enable_caching=False if args.no_cache else None)
    if args.dry_run:
        print(request.to_json())
        return 0
    try:
        name = vertex.send(request)
    except Exception as error:  # broad on purpose: explain() picks the API errors
        message = vertex.explain(error, config)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1
    what = f"schedule ({args.schedule})" if args.schedule else "run"
    print(f"created {what}: {name}\n  https://console.cloud.google.com/vertex-ai/pipelines"
          f"?project={config.project}\n  models land in {config.pipeline.model_base_path}/"
          + (f" and in the Vertex AI Model Registry as {config.registry.display_name!r}"
             if config.registry.enabled else ""))
    return 0
