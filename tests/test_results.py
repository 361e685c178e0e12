"""pipeline/results.py: the run summary's gate lines (candidate vs production vs popularity, the
verdict), its warm-start line and its pushed line; and latest_run_summary reading them back from
an ML Metadata store: the production model named by the version its Pusher pushed, the
Trainer's warm_start.json."""

import json
import os

import numpy as np
import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from pipeline.config import load_config
from pipeline.gate import METRICS_FILE
from pipeline.results import RunSummary, latest_run_summary

COMPONENTS = {"Trainer": "COMPLETE", "RetrievalGate": "COMPLETE", "Pusher": "COMPLETE"}
WARM_START = {
    "base_model": "/run/pipeline_root/Trainer/model/7/Format-Serving",
    "items": {"carried": 1623, "new": 27, "dropped": 3},
    "users": {"carried": 930, "new": 13, "dropped": 0},
    "title_tokens": {"carried": 500, "new": 2, "dropped": 1},
    "layers": {"copied": ["candidate_tower/projection/0", "query_tower/projection/0"],
               "fresh": []},
}


def _recall(**values):
    return {f"recall@{k[1:]}": v for k, v in values.items()}


def _metrics(model, popularity, production=None, blessed=True, reasons=(), **more):
    metrics = {"model": _recall(**model), "popularity": _recall(**popularity),
               "judged_ks": [int(k[1:]) for k in model], "tolerance": 0.005,
               "blessed": blessed, "reasons": list(reasons), "already_in_production": False,
               "gate": "..."}
    if production is not None:
        metrics["production"] = {"id": 7, "uri": "/run/pipeline_root/Trainer/model/7",
                                 "evaluated": "candidate", **_recall(**production)}
    metrics.update(more)
    return metrics


def _gate_lines(text):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("gate: "))
    end = next(i for i, line in enumerate(lines) if line.startswith("pushed: "))
    return lines[start:end]


def test_a_blessed_model_against_production_in_one_line_per_k():
    summary = RunSummary(COMPONENTS,
                         _metrics({"k10": 0.1812}, {"k10": 0.0931}, production={"k10": 0.1764}),
                         pushed=True, pushed_path="/serving/towergraph/1700000100",
                         production_version="1700000000")
    assert _gate_lines(summary.describe(components=False)) == [
        "gate: recall@10 0.181 vs production 1700000000 0.176 vs popularity 0.093 -> blessed"]
    assert summary.describe().splitlines()[-1] == "pushed: /serving/towergraph/1700000100"
    assert summary.succeeded


def test_a_refused_model_names_the_reasons_and_every_k():
    reasons = ["recall@100 0.380 is more than 0.005 below production 0.400"]
    summary = RunSummary(COMPONENTS,
                         _metrics({"k10": 0.181, "k100": 0.38}, {"k10": 0.093, "k100": 0.3},
                                  production={"k10": 0.176, "k100": 0.4}, blessed=False,
                                  reasons=reasons),
                         pushed=False, pushed_path=None)
    assert _gate_lines(summary.describe()) == [
        "gate: recall@10 0.181 vs production model 7 0.176 vs popularity 0.093",
        "      recall@100 0.380 vs production model 7 0.400 vs popularity 0.300 -> NOT blessed "
        "(recall@100 0.380 is more than 0.005 below production 0.400)"]
    assert summary.describe().splitlines()[-1] == ("pushed: nothing (the model did not pass "
                                                   "the gate)")
    assert not summary.succeeded


def test_a_first_model_is_judged_against_popularity_only():
    summary = RunSummary(COMPONENTS, _metrics({"k10": 0.181}, {"k10": 0.093}),
                         pushed=True, pushed_path="/serving/towergraph/1")
    assert _gate_lines(summary.describe()) == [
        "gate: recall@10 0.181 vs popularity 0.093 -> blessed "
        "(first model: judged against popularity only)"]


def test_a_capped_k_and_a_production_judged_by_its_served_model_are_explained():
    metrics = _metrics({"k10": 0.5, "k20": 0.8}, {"k10": 0.1, "k20": 0.6},
                       production={"k10": 0.45, "k20": 0.8},
                       ks=[{"configured": 10, "judged": 10},
                           {"configured": 100, "judged": 20, "why": "the catalogue has 40 items"}])
    metrics["production"]["note"] = "its served model may have seen this eval split"
    lines = _gate_lines(RunSummary(COMPONENTS, metrics, True, "/v/2",
                                   production_version="1").describe())
    assert lines[1].startswith("      recall@20 0.800 vs production 1 0.800")
    assert lines[2:] == [
        "      (recall@100 judged at k=20: the catalogue has 40 items)",
        "      (production 1: its served model may have seen this eval split)"]


def test_the_model_already_in_production_is_a_success_with_nothing_pushed():
    metrics = _metrics({"k10": 0.181}, {"k10": 0.093}, production={"k10": 0.181},
                       blessed=False, reasons=["already in production"],
                       already_in_production=True)
    summary = RunSummary(COMPONENTS, metrics, pushed=False, pushed_path=None,
                         production_version="1700000000")
    text = summary.describe()
    assert _gate_lines(text)[-1].endswith(
        "-> already in production: not blessed again, nothing new to push")
    assert "NOT blessed" not in text
    assert text.splitlines()[-1] == ("pushed: no new version (the model is already in "
                                     "production as version 1700000000)")
    assert summary.succeeded


def test_metrics_from_a_gate_before_the_production_comparison_are_still_shown():
    old = {"model": {"recall@10": 0.2, "recall@100": 0.5},
           "popularity": {"recall@10": 0.1, "recall@100": 0.4},
           "blessed": True, "gate": "model recall@k > popularity recall@k for k in [10, 100]"}
    assert _gate_lines(RunSummary(COMPONENTS, old, True, "/v/1").describe()) == [
        "gate: recall@10 0.200 vs popularity 0.100",
        "      recall@100 0.500 vs popularity 0.400 -> blessed "
        "(first model: judged against popularity only)"]


@pytest.mark.parametrize("warm_start, source, line", [
    (WARM_START, "version 1700000000",
     "warm start: from version 1700000000 (1,623 of 1,650 items and 930 of 943 users carried "
     "over; 27 new items, 13 new users initialised fresh; 3 items of the base model no longer "
     "in the data)"),
    ({**WARM_START, "items": {"carried": 1650, "new": 0, "dropped": 0},
      "users": {"carried": 943, "new": 0, "dropped": 0},
      "layers": {"copied": ["a"], "fresh": ["b", "c"]}}, "model 7",
     "warm start: from model 7 (1,650 of 1,650 items and 943 of 943 users carried over; "
     "2 of 3 layers initialised fresh)"),
    (WARM_START, None,
     "warm start: from /run/pipeline_root/Trainer/model/7/Format-Serving (1,623 of 1,650 items "
     "and 930 of 943 users carried over; 27 new items, 13 new users initialised fresh; 3 items "
     "of the base model no longer in the data)"),
    ({"base_model": None}, None, "warm start: none (trained from scratch)"),
])
def test_the_warm_start_line(warm_start, source, line):
    summary = RunSummary(COMPONENTS, _metrics({"k10": 0.2}, {"k10": 0.1}), True, "/v/1",
                         warm_start=warm_start, warm_start_from=source)
    lines = summary.describe(components=False).splitlines()
    assert lines[0] == line
    assert lines[1].startswith("gate: ")


def test_the_warm_start_line_reads_what_the_trainer_writes():
    from trainer.warm_start import Report, Rows
    report = Report(base_model="/run/Trainer/model/7/Format-Serving",
                    vocabularies={"items": Rows(1623, 27, 3), "users": Rows(930, 13, 0),
                                  "title_tokens": Rows(500, 2, 1)},
                    copied=("candidate_tower/projection/0",), fresh=())
    summary = RunSummary(COMPONENTS, None, True, "/v/1",
                         warm_start=json.loads(json.dumps(report.as_json())),
                         warm_start_from="version 1700000000")
    assert summary.describe(components=False).splitlines()[0] == (
        "warm start: from version 1700000000 (1,623 of 1,650 items and 930 of 943 users "
        "carried over; 27 new items, 13 new users initialised fresh; 3 items of the base "
        "model no longer in the data)")
    scratch = RunSummary(COMPONENTS, None, True, "/v/1", warm_start=Report().as_json())
    assert scratch.describe(components=False).splitlines()[0] == (
        "warm start: none (trained from scratch)")


def test_the_catalogue_line_reads_what_the_trainer_writes():
    from trainer.catalog import Catalog
    catalog = Catalog(item_ids=list("abcdef"), titles=list("ABCDEF"), genres=None,
                      authors=None, counts=np.array([5, 4, 3, 2, 0, 0]), warm_items=3)
    composition = json.loads(json.dumps(catalog.composition()))
    assert composition == {"items": 6, "warm": 3, "cold_rated": 1, "cold_unrated": 2}
    summary = RunSummary(COMPONENTS, _metrics({"k10": 0.2}, {"k10": 0.1}), True, "/v/1",
                         catalog=composition)
    lines = summary.describe(components=False).splitlines()
    assert lines[0] == ("catalogue: 6 items, 3 trained on, 3 cold placed by their content "
                        "(1 rated but outside the item vocabulary, 2 nobody rated yet)")
    assert lines[1].startswith("gate: ")
    warm = Catalog(item_ids=list("ab"), titles=list("AB"), genres=None, authors=None,
                   counts=np.array([2, 1]))
    assert RunSummary(COMPONENTS, None, True, "/v/1", catalog=warm.composition()).describe(
        components=False).splitlines()[0] == "catalogue: 2 items, all trained on"


def test_no_warm_start_line_without_the_trainers_file():
    text = RunSummary(COMPONENTS, _metrics({"k10": 0.2}, {"k10": 0.1}), True, "/v/1").describe()
    assert "warm start" not in text


# --- latest_run_summary on a hand-made ML Metadata store -----------------------------------


class _Store:
    def __init__(self, path):
        self.store = metadata_store.MetadataStore(
            metadata.sqlite_metadata_connection_config(str(path)))
        self.run = None

    def _type(self, kind, name):
        if kind == "artifact":
            return self.store.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))
        if kind == "execution":
            return self.store.put_execution_type(metadata_store_pb2.ExecutionType(name=name))
        return self.store.put_context_type(metadata_store_pb2.ContextType(name=name))

    def artifact(self, type_name, uri, **properties):
        artifact = metadata_store_pb2.Artifact(type_id=self._type("artifact", type_name),
                                               uri=str(uri))
        for name, value in properties.items():
            if isinstance(value, int):
                artifact.custom_properties[name].int_value = value
            else:
                artifact.custom_properties[name].string_value = value
        [artifact.id] = self.store.put_artifacts([artifact])
        return artifact

    def start_run(self, name):
        context = metadata_store_pb2.Context(type_id=self._type("context", "pipeline_run"),
                                             name=name)
        [context.id] = self.store.put_contexts([context])
        self.run = context

    def execute(self, component, inputs=(), outputs=(), in_run=True):
        """`component` consumed `inputs` and made `outputs`: (key, artifact) pairs."""
        execution = metadata_store_pb2.Execution(
            type_id=self._type("execution", f"tfx.components.{component}"),
            last_known_state=metadata_store_pb2.Execution.COMPLETE)
        pairs = []
        for kind, artifacts in ((metadata_store_pb2.Event.INPUT, inputs),
                                (metadata_store_pb2.Event.OUTPUT, outputs)):
            for key, artifact in artifacts:
                event = metadata_store_pb2.Event(type=kind)
                event.path.steps.add().key = key
                pairs.append((artifact, event))
        self.store.put_execution(execution, pairs, [self.run] if in_run else [])


@pytest.fixture
def recorded_run(tmp_path, request):
    """Two runs: the first pushed model A as version 1700000000 (a later Pusher that consumed
    A again pushed nothing); the latest trained B warm-started from A, the gate compared B
    with A, and B was pushed as 1700000100. Indirect parameter False: the Trainer's base_model
    input is not recorded."""
    base_input = getattr(request, "param", True)
    config = load_config(None, output_dir=str(tmp_path / "run"))
    os.makedirs(os.path.dirname(config.metadata), exist_ok=True)
    mlmd = _Store(config.metadata)
    model_a = mlmd.artifact("Model", tmp_path / "Trainer/model/1")
    mlmd.execute("Pusher", inputs=[("model", model_a)], in_run=False, outputs=[
        ("pushed_model", mlmd.artifact("PushedModel", tmp_path / "Pusher/1", pushed=1,
                                       pushed_destination="/serving/towergraph/1700000000/"))])
    # (TFX's Pusher also sets pushed_version; without it the destination's folder names it.)
    mlmd.execute("Pusher", inputs=[("model", model_a)], in_run=False, outputs=[
        ("pushed_model", mlmd.artifact("PushedModel", tmp_path / "Pusher/2", pushed=0))])

    mlmd.start_run("towergraph-2026-11-24T10:00:00")
    model_b_uri = tmp_path / "Trainer/model/3"
    model_b = mlmd.artifact("Model", model_b_uri)
    os.makedirs(model_b_uri)
    evaluation_uri = tmp_path / "RetrievalGate/evaluation/4"
    os.makedirs(evaluation_uri)
    metrics = _metrics({"k10": 0.181}, {"k10": 0.093}, production={"k10": 0.176})
    metrics["production"].update(id=model_a.id, uri=model_a.uri)
    (evaluation_uri / METRICS_FILE).write_text(json.dumps(metrics))
    mlmd.execute("Trainer", inputs=[("base_model", model_a)] if base_input else [],
                 outputs=[("model", model_b)])
    mlmd.execute("RetrievalGate", inputs=[("model", model_b), ("baseline_model", model_a)],
                 outputs=[("evaluation", mlmd.artifact("ModelEvaluation", evaluation_uri))])
    mlmd.execute("Pusher", inputs=[("model", model_b)], outputs=[
        ("pushed_model", mlmd.artifact("PushedModel", tmp_path / "Pusher/5", pushed=1,
                                       pushed_destination="/serving/towergraph/1700000100"))])
    return config, model_b_uri, model_a


@pytest.mark.parametrize("recorded_run", [True, False], indirect=True,
                         ids=["base-model-input", "base-model-found-by-its-folder"])
def test_the_summary_names_the_production_model_by_its_pushed_version(recorded_run):
    config, model_b_uri, model_a = recorded_run
    warm_start = {**WARM_START, "base_model": os.path.join(model_a.uri, "Format-Serving")}
    (model_b_uri / "warm_start.json").write_text(json.dumps(warm_start))
    summary = latest_run_summary(config)
    assert summary.production_version == "1700000000"
    assert summary.pushed_path == "/serving/towergraph/1700000100"
    lines = summary.describe(components=False).splitlines()
    assert lines == [
        "warm start: from version 1700000000 (1,623 of 1,650 items and 930 of 943 users "
        "carried over; 27 new items, 13 new users initialised fresh; 3 items of the base "
        "model no longer in the data)",
        "gate: recall@10 0.181 vs production 1700000000 0.176 vs popularity 0.093 -> blessed",
        "pushed: /serving/towergraph/1700000100"]


def test_the_pushed_version_property_names_the_version_where_set(tmp_path):
    from pipeline.results import pushed_version
    mlmd = _Store(tmp_path / "metadata.sqlite")
    model = mlmd.artifact("Model", tmp_path / "model")
    mlmd.execute("Pusher", inputs=[("model", model)], in_run=False, outputs=[
        ("pushed_model", mlmd.artifact("PushedModel", tmp_path / "pushed", pushed=1,
                                       pushed_version="1700000042"))])
    assert pushed_version(mlmd.store, model.id) == "1700000042"
    assert pushed_version(mlmd.store, mlmd.artifact("Model", tmp_path / "never").id) is None


def test_a_model_trained_from_scratch_says_so(recorded_run):
    config, model_b_uri, _ = recorded_run
    (model_b_uri / "warm_start.json").write_text(json.dumps({"base_model": None}))
    summary = latest_run_summary(config)
    assert summary.warm_start == {"base_model": None}
    assert "warm start: none (trained from scratch)" in summary.describe().splitlines()


def test_no_warm_start_file_no_warm_start_line(recorded_run):
    config, _, _ = recorded_run
    summary = latest_run_summary(config)
    assert summary.warm_start is None
    assert not any(line.startswith("warm start") for line in summary.describe().splitlines())


# --- towergraph run's exit code ----------------------------------------------------------


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
@pytest.mark.parametrize("outcome, exit_code", [("pushed", 0), ("already", 0), ("refused", 1)])
def test_run_exits_0_when_pushed_or_already_in_production(tmp_path, monkeypatch, capsys,
                                                          verbose, outcome, exit_code):
    import towergraph.cli as cli
    metrics = _metrics({"k10": 0.181}, {"k10": 0.093}, production={"k10": 0.181},
                       blessed=outcome == "pushed",
                       already_in_production=outcome == "already")
    summary = RunSummary(COMPONENTS, metrics, pushed=outcome == "pushed",
                         pushed_path="/v/2" if outcome == "pushed" else None)
    monkeypatch.setattr(cli, "_run_pipeline", lambda config, args, progress: summary)
    flags = ["--verbose"] if verbose else []
    assert cli.main(["run", "--output", str(tmp_path), *flags]) == exit_code
    assert summary.describe(components=verbose) in capsys.readouterr().out
