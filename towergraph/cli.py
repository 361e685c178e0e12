"""`towergraph`: the project's command line.

    towergraph data prepare|synthetic|download ...   prepared data for the pipeline
    towergraph run --data DIR --output DIR           the TFX pipeline, locally
    towergraph vertex compile|submit ...             the same pipeline on Vertex AI Pipelines
    towergraph serve --model-dir work/run/serving     TF Serving, or its local stand-in
    towergraph graph --server URL --title TEXT       a similarity graph from a served model
    towergraph ui --server URL                       the graph explorer (Streamlit)

Every pipeline and model setting is also a flag of `run` (generated from the config classes,
so the flags, the YAML file and the README's table cannot drift apart). A config problem (YAML
syntax, a wrong type, an unknown setting, a missing file) prints `error: ...` naming the file,
line and setting (or the flag) and exits 2; exit code 1 means the gate rejected the model,
3 that a pipeline component failed (its name, the error and the log file are printed).

`run` shows one line per component, one per training epoch and the run summary; the full logs
of TensorFlow, Beam and TFX go to <output>/logs/run-<time>.log (towergraph/console.py).
`run --verbose` shows all of them on the console instead.
"""

import argparse
import os
import sys
import traceback
from typing import Any, Dict, List, Optional

from pipeline.config import DIRECT_RUNNER, PipelineConfig, read_config
from pipeline.data.cli import add_data_commands
from pipeline.vertex_cli import add_vertex_command
from serving.graph_cli import add_graph_command
from serving.serve_cli import add_serve_command
from ui.cli import add_ui_command
from trainer.config import ModelConfig
from trainer.settings import ConfigError, hints, settings

# Settings that make no sense as flags of `run` (--data and --output cover the paths).
_NOT_FLAGS = {"model", "data_dir", "output_dir"}
_PATH_FLAGS = {"data_dir": "--data", "output_dir": "--output"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _metavar(hint: Any) -> str:
    """How a flag's value looks: the text `parse_text` (trainer/settings.py) accepts."""
    if hint is bool:
        return "true|false"
    if hint in (int, float, str):
        return {int: "INT", float: "NUMBER", str: "TEXT"}[hint]
    return "N,N,..."


def _add_setting_flags(group, config_class, skip=()) -> None:
    types = hints(config_class)
    for name, default, help_text in settings(config_class):
        if name in skip:
            continue
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        # Text here; the config loader parses it with the YAML file's values, so every
        # problem of both is reported at once, each naming its flag.
        group.add_argument(_flag(name), dest=name, metavar=_metavar(types[name]),
                           default=None, help=f"{help_text} (default: {shown!r})")


def _overrides(args: argparse.Namespace, config_class, skip=()) -> Dict[str, Any]:
    names = [name for name, _, _ in settings(config_class) if name not in skip]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _flag_of(setting: str) -> str:
    """Where a value from the command line came from, for config errors."""
    name = setting.rsplit(".", 1)[-1]
    return "flag " + _PATH_FLAGS.get(name, _flag(name))


def _add_run_command(subparsers) -> None:
    run = subparsers.add_parser(
        "run", help=f"run the TFX pipeline locally (Beam {DIRECT_RUNNER}, MLMD sqlite cache)",
        description="Runs CsvExampleGen .. Pusher on prepared data. A re-run with unchanged "
                    "data, code and settings reuses every cached component.")
    run.add_argument("--config", help="YAML config file; flags override it")
    run.add_argument("--data", dest="data_dir", help="prepared data directory "
                     "(`towergraph data prepare --output`)")
    run.add_argument("--output", dest="output_dir",
                     help="holds pipeline_root/, metadata.sqlite and serving/")
    run.add_argument("--no-cache", action="store_true", help="re-run every component")
    run.add_argument("--verbose", action="store_true",
                     help="show every log (TensorFlow, Beam, TFX) on the console instead of "
                          "progress lines and a log file under --output")
    _add_setting_flags(run.add_argument_group("pipeline settings"), PipelineConfig, _NOT_FLAGS)
    _add_setting_flags(run.add_argument_group("model settings"), ModelConfig)
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    overrides = _overrides(args, PipelineConfig, skip={"model"})  # --data, --output included
    overrides["model"] = _overrides(args, ModelConfig)
    try:  # before TFX is imported: a config error shows in a second, never as a traceback
        config = read_config(args.config, overrides, override_origin=_flag_of, text=True)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return _run_verbose(config, args) if args.verbose else _run_quiet(config, args)


class _NoData(Exception):
    """No prepared data where the config points: exit code 2, like a config error."""


def _run_pipeline(config: PipelineConfig, args: argparse.Namespace, progress):
    """Runs the pipeline and returns its RunSummary; `progress` hears of its components."""
    # Imported here: TFX and TensorFlow take half a minute to import, `data` needs neither.
    from pipeline.local_runner import local_pipeline, run_pipeline
    from pipeline.results import latest_run_summary
    problem = _missing_data(config)
    if problem:
        raise _NoData(problem)
    pipeline = local_pipeline(config, enable_cache=not args.no_cache)
    progress.start([component.id for component in pipeline.components])
    run_pipeline(pipeline)
    return latest_run_summary(config)


def ran_on(config: PipelineConfig) -> str:
    """Where the run's work ran: the Beam mode (auto's choice said as such) and the device
    the Trainer trained on (a GPU when TensorFlow sees one: it is used with no flag) and the
    precision of its loss's matrix products (model.loss_precision, auto resolved)."""
    import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
    import tensorflow as tf

    from trainer.hardware import loss_precision
    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
             for gpu in gpus]
    device = f"GPU ({', '.join(names)})" if gpus else f"CPU ({os.cpu_count()} cores)"
    mode = config.resolved_beam_mode()
    beam = f"{mode} (auto, by input size)" if config.beam_mode == "auto" else mode
    precision = loss_precision(config.model.loss_precision)
    if config.model.loss_precision == "auto":
        precision += " (auto)"
    return (f"ran on: Beam {DIRECT_RUNNER} {beam}; training on {device}, loss products in "
            f"{precision}")


def _run_quiet(config: PipelineConfig, args: argparse.Namespace) -> int:
    """Progress lines and the summary on the console, every other output in the log file."""
    from towergraph.console import ComponentProgress, log_path_for, quiet_output, renderer_for
    log_path = log_path_for(config.output_dir)
    failed = None
    try:
        with quiet_output(log_path) as console:
            progress = ComponentProgress(renderer_for(console))
            progress.renderer.begin(log_path)
            try:
                with progress.listening():
                    summary = _run_pipeline(config, args, progress)
            except BaseException:
                failed = progress.failed()
                raise
            finally:
                progress.renderer.stop()
    except _NoData as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted{f' in {failed}' if failed else ''}; full log: {log_path}",
              file=sys.stderr)
        return 130
    except Exception as error:
        if failed is None:    # not a component's failure: its traceback, as before
            print(f"full log: {log_path}", file=sys.stderr)
            raise
        _report_failure(error, failed, log_path)
        return 3
    print(ran_on(config))
    print(summary.describe(components=False))
    return 0 if summary.succeeded else 1   # pushed, or the model is already in production


def _run_verbose(config: PipelineConfig, args: argparse.Namespace) -> int:
    """Every log on the console (as before progress lines existed), then the summary."""
    from towergraph.console import ComponentProgress, verbose_output
    progress = ComponentProgress(renderer=None)    # only to name a failing component
    try:
        with verbose_output(), progress.listening():
            summary = _run_pipeline(config, args, progress)
    except _NoData as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        failed = progress.failed()
        if failed is None:
            raise
        traceback.print_exc()
        _report_failure(error, failed, None)
        return 3
    print(ran_on(config))
    print(summary.describe())
    return 0 if summary.succeeded else 1   # pushed, or the model is already in production


def _report_failure(error: Exception, component: str, log_path: Optional[str]) -> None:
    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    print(f"error: {component} failed: {message}", file=sys.stderr)
    if log_path:
        print(f"full log, with the traceback: {log_path}", file=sys.stderr)


def _missing_data(config: PipelineConfig) -> Optional[str]:
    from pipeline.data.prepared import INTERACTIONS  # the prepared layout's one home
    path = os.path.join(config.data_dir, INTERACTIONS)
    if not os.path.exists(path):
        return (f"no prepared data at {path}; create it with `towergraph data prepare` "
                f"or `towergraph data synthetic`")
    items = config.items_file
    if config.model.cold_items and not os.path.isfile(items):
        # The pipeline's ItemCatalogGen reads it (items nobody rated become cold items).
        return (f"no item catalogue at {items} (prepared data written before it listed every "
                f"item?); prepare the data again with `towergraph data prepare`, or run with "
                f"--cold-items false")
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="towergraph", description="Train a two-tower recommender with TFX, serve it, "
                                       "explore it as a similarity graph.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_data_commands(subparsers)
    _add_run_command(subparsers)
    add_vertex_command(subparsers)
    add_serve_command(subparsers)
    add_graph_command(subparsers)
    add_ui_command(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
