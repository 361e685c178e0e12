"""The one settings loader and `--set` parser (trainer/settings.py) and the local config
(pipeline/config.py) built on it: strict types, every problem collected with the setting and
where its value came from, YAML errors with line and column. No TFX import: these run in a
second. The Vertex config's use of the loader: tests/test_vertex_config.py.
"""

import dataclasses
from typing import Tuple

import pytest

from pipeline.config import PipelineConfig, from_dict, load_config, read_config
from trainer.config import ModelConfig, from_mapping
from trainer.settings import (MAX_CONFIG_BYTES, ConfigError, Layer, load, parse_assignments,
                              parse_text, read_yaml, setting)


def problems(error: ConfigError):
    return [str(problem) for problem in error.problems]


def load_problems(text: str, tmp_path, name: str = "config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    return path, problems(caught.value)


def only(text: str, tmp_path):
    path, found = load_problems(text, tmp_path)
    assert len(found) == 1, found
    return path, found[0]


# --- strict types from YAML ----------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    ("2.5", "expected an integer, got 2.5"),
    ("true", "expected an integer, got true"),
    ("ten", "expected an integer, got 'ten'"),
    ('"10"', "expected an integer, got '10'"),
    ("[10]", "expected an integer, got a list"),
    ("", "expected an integer, got nothing (null)"),
    ("1" + "0" * 30, "expected an integer of at most 9223372036854775807 in size"),
])
def test_int_setting_is_an_int(tmp_path, value, expected):
    path, problem = only(f"model:\n  seed: 1\n  epochs: {value}\n", tmp_path)
    assert problem.startswith(f"model.epochs: {expected}"), problem
    assert problem.endswith(f"(from {path}) at line 3")


def test_bool_setting_is_not_an_int(tmp_path):
    path, problem = only("model:\n  logq_correction: 1\n", tmp_path)
    assert problem == f"model.logq_correction: expected true or false, got 1 (from {path}) at line 2"


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1.0e+999"])
def test_float_setting_is_finite(tmp_path, value):
    _, problem = only(f"model:\n  temperature: {value}\n", tmp_path)
    assert problem.startswith("model.temperature: expected a finite number")


def test_float_setting_accepts_an_int_and_tuples_come_from_lists(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("gate_ks: [5, 50]\nmodel:\n  temperature: 1\n  candidate_layers: [256, 128]\n"
                    "  query_layers: []\n")
    config = load_config(str(path))
    assert config.model.temperature == 1.0 and isinstance(config.model.temperature, float)
    assert config.model.candidate_layers == (256, 128) and config.model.query_layers == ()
    assert config.gate_ks == (5, 50)


def test_list_item_of_the_wrong_type_names_its_position(tmp_path):
    _, problem = only("model:\n  candidate_layers: [128, 64.5]\n", tmp_path)
    assert problem.startswith("model.candidate_layers: item 2 of the list: expected an "
                              "integer, got 64.5")


def test_text_setting_is_text(tmp_path):
    _, problem = only("model_name: 123\n", tmp_path)
    assert problem.startswith("model_name: expected text, got 123")


# --- every problem, each with where it came from --------------------------------------------------

def test_every_problem_is_collected_with_its_line(tmp_path):
    path, found = load_problems(
        "eval_percent: 0\ntop_items: -1\nbogus: 1\nmodel:\n  epochs: 2.5\n"
        "  embedding_dim: true\n  batch_size: 0\n  typo: 3\n", tmp_path)
    assert found == [
        f"bogus: unknown setting; known: {', '.join(f.name for f in dataclasses.fields(PipelineConfig))} "
        f"(from {path}) at line 3",
        f"model.epochs: expected an integer, got 2.5 (from {path}) at line 5",
        f"model.embedding_dim: expected an integer, got true (from {path}) at line 6",
        f"model.typo: unknown setting; known: "
        f"{', '.join('model.' + f.name for f in dataclasses.fields(ModelConfig))} "
        f"(from {path}) at line 8",
        f"model.batch_size: must be positive, not 0 (from {path}) at line 7",
        f"eval_percent: must be between 1 and 99, not 0 (from {path}) at line 1",
        f"top_items: must be 0 (all) or positive, not -1 (from {path}) at line 2",
    ]


def test_cross_setting_check_names_both_values(tmp_path):
    path, problem = only("max_k: 50\n", tmp_path)
    # gate_ks is the default here: the message says which max_k it conflicts with.
    assert problem == ("gate_ks: every k must be between 1 and max_k=50, not [10, 100] "
                       "(from the default)")


def test_a_setting_with_a_type_problem_is_not_reported_twice(tmp_path):
    _, problem = only("max_k: 5\ngate_ks: ten\n", tmp_path)
    assert problem.startswith("gate_ks: expected a list of integers, got 'ten'")


def test_a_list_where_a_section_belongs(tmp_path):
    path, problem = only("model:\n  - epochs\n", tmp_path)
    assert problem == ("model: expected a mapping of settings (name: value lines), got a list "
                       f"(from {path}) at line 1")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_a_file_that_is_not_a_mapping(tmp_path, text):
    path, problem = only(text, tmp_path)
    assert problem.startswith("expected a mapping of settings") and str(path) in problem


def test_an_empty_file_or_section_is_the_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\nmodel:\n")
    assert load_config(str(path)) == PipelineConfig()


# --- YAML itself --------------------------------------------------------------------------------

def test_yaml_syntax_error_names_line_and_column(tmp_path):
    path, problem = only("pipeline_name: x\nmodel:\n  epochs: [unclosed\n  seed: 1\n", tmp_path)
    assert problem.startswith(f"{path} is not valid YAML: line 4, column 7: ")


def test_tab_indentation_names_line_and_column(tmp_path):
    path, problem = only("model:\n\tepochs: 3\n", tmp_path)
    assert problem.startswith(f"{path} is not valid YAML: line 2, column 1: ")


def test_duplicate_key_is_an_error_not_silently_the_last(tmp_path):
    path, problem = only("model:\n  epochs: 1\n  seed: 2\n  epochs: 20\n", tmp_path)
    assert problem == (f"{path} is not valid YAML: line 4, column 3: duplicate key 'epochs' "
                       f"(first on line 2)")


def test_python_tags_are_refused(tmp_path):
    _, problem = only("model: !!python/object/apply:os.system ['true']\n", tmp_path)
    assert "is not valid YAML: line 1, column 8" in problem


def test_missing_file_not_utf8_and_too_large(tmp_path):
    with pytest.raises(ConfigError, match="config file .*nowhere.yaml does not exist"):
        load_config(str(tmp_path / "nowhere.yaml"))
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(str(tmp_path))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"model:\n  epochs: \xff\n")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 18\)"):
        load_config(str(binary))
    large = tmp_path / "large.yaml"
    large.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load_config(str(large))


def test_read_yaml_keeps_merge_keys_working(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: &base {epochs: 3, seed: 1}\nmodel:\n  <<: *base\n  seed: 7\n")
    assert read_yaml(str(path))["model"] == {"epochs": 3, "seed": 7}


# --- overrides and text (flags, environment, --set) ----------------------------------------------

def test_overrides_win_over_the_file_and_are_checked_too(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("top_items: 100\nmodel:\n  epochs: 3\n  seed: 5\n")
    config = load_config(str(path), top_items=7, model={"epochs": 4})
    assert (config.top_items, config.model.epochs, config.model.seed) == (7, 4, 5)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), model={"epochs": 2.5})
    assert problems(caught.value) == ["model.epochs: expected an integer, got 2.5 "
                                      "(from override of model.epochs)"]


def test_text_overrides_are_parsed_and_name_their_origin(tmp_path):
    config = read_config(None, {"top_items": "30", "gate_ks": "5,20",
                                "model": {"logq_correction": "false", "temperature": "0.5"}},
                         override_origin=lambda name: f"flag {name}", text=True)
    assert (config.top_items, config.gate_ks) == (30, (5, 20))
    assert config.model.logq_correction is False and config.model.temperature == 0.5
    with pytest.raises(ConfigError) as caught:
        read_config(None, {"model": {"epochs": "2.5", "batch_size": "0"}},
                    override_origin=lambda name: f"flag {name}", text=True)
    assert problems(caught.value) == [
        "model.epochs: expected an integer, got '2.5' (from flag model.epochs)",
        "model.batch_size: must be positive, not 0 (from flag model.batch_size)"]


@pytest.mark.parametrize("hint,text,value", [
    (int, "12", 12), (int, " -3 ", -3), (float, "0.05", 0.05), (float, "2", 2.0),
    (bool, "true", True), (bool, "False", False), (bool, "no", False), (bool, "1", True),
    (str, " keep spaces ", " keep spaces "), (Tuple[int, ...], "256,128", (256, 128)),
    (Tuple[int, ...], "", ()), (Tuple[int, ...], "(256, 128)", (256, 128)),
    (Tuple[str, ...], "--a=1,--b", ("--a=1", "--b")),
])
def test_parse_text(hint, text, value):
    assert parse_text(hint, text) == value


@pytest.mark.parametrize("hint,text,message", [
    (int, "2.5", "expected an integer, got '2.5'"), (int, "1e3", "expected an integer"),
    (int, "", "expected an integer"), (int, "9" * 40, "expected an integer"),
    (bool, "maybe", "expected true or false, got 'maybe'"),
    (float, "nan", "expected a finite number"), (float, "fast", "expected a number"),
    (Tuple[int, ...], "256,x", "item 2: expected an integer, got 'x'"),
])
def test_parse_text_rejects(hint, text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_text(hint, text)


def test_parse_assignments_for_set():
    assert parse_assignments(ModelConfig, ["temperature=0.2", "epochs=5",
                                           "candidate_layers=256,128", "query_layers=",
                                           "logq_correction=false"]) == {
        "temperature": 0.2, "epochs": 5, "candidate_layers": (256, 128), "query_layers": (),
        "logq_correction": False}
    assert parse_assignments(PipelineConfig, ["model.epochs=3", "top_items=10"]) == {
        "model": {"epochs": 3}, "top_items": 10}


def test_parse_assignments_reports_every_bad_pair():
    with pytest.raises(ConfigError) as caught:
        parse_assignments(ModelConfig, ["epochs=ten", "epoch=5", "temperature", "seed=1"])
    found = problems(caught.value)
    assert found[0] == "epochs: expected an integer, got 'ten' (from --set epochs=ten)"
    assert found[1].startswith("epoch: unknown setting; known: embedding_dim, ")
    assert found[2] == "expected NAME=VALUE, got 'temperature' (from --set)"
    assert len(found) == 3


# --- the generic loader and its other callers ----------------------------------------------------

def test_from_mapping_for_the_trainer_custom_config():
    """trainer/run.py reads custom_config["model"], which JSON turned tuples into lists."""
    where = 'Trainer custom_config["model"]'
    model = from_mapping(ModelConfig, {"candidate_layers": [64], "epochs": 3}, where)
    assert model.candidate_layers == (64,) and model.epochs == 3
    with pytest.raises(ValueError) as caught:
        from_mapping(ModelConfig, {"epochs": 2.5, "batch_sizes": 3}, where)
    assert problems(caught.value) == [
        f"epochs: expected an integer, got 2.5 (from {where})",
        f"batch_sizes: unknown setting; known: "
        f"{', '.join(f.name for f in dataclasses.fields(ModelConfig))} (from {where})"]


def test_from_dict_keeps_working():
    assert from_dict({"model": {"epochs": 2}}).model.epochs == 2
    with pytest.raises(ValueError, match=r"model\.epochs: must be positive, not 0"):
        from_dict({"model": {"epochs": 0}}, where="somewhere")


def test_layers_later_wins_and_defaults_stay():
    @dataclasses.dataclass(frozen=True)
    class Inner:
        size: int = setting(1, "a size")

    @dataclasses.dataclass(frozen=True)
    class Outer:
        name: str = setting("x", "a name")
        inner: Inner = dataclasses.field(default_factory=Inner)

    loaded = load(Outer, [Layer({"name": "file", "inner": {"size": 2}}, "file.yaml"),
                          Layer({"inner": {"size": "3"}}, lambda name: f"env {name}", text=True)])
    assert loaded == Outer("file", Inner(3))
    with pytest.raises(ConfigError) as caught:
        load(Outer, [Layer({"inner": {"size": "3"}}, "file.yaml")])  # typed layer: no parsing
    assert problems(caught.value) == ["inner.size: expected an integer, got '3' (from file.yaml)"]


def _interactions(tmp_path, size: int) -> str:
    folder = tmp_path / "data" / "interactions"
    folder.mkdir(parents=True)
    with open(folder / "interactions.csv", "wb") as handle:
        handle.truncate(size)        # a sparse file: only its size matters here
    (folder / "notes.txt").write_text("not an interactions file")
    return str(tmp_path / "data")


def test_beam_mode_auto_runs_small_inputs_in_memory_and_large_ones_on_every_core(tmp_path):
    from pipeline.config import AUTO_IN_MEMORY_MAX_BYTES
    from pipeline.definition import local_beam_args

    small = load_config(None, data_dir=_interactions(tmp_path / "a", AUTO_IN_MEMORY_MAX_BYTES))
    large = load_config(None, data_dir=_interactions(tmp_path / "b", AUTO_IN_MEMORY_MAX_BYTES + 1))
    assert small.beam_mode == large.beam_mode == "auto"
    assert small.resolved_beam_mode() == "in_memory"
    assert large.resolved_beam_mode() == "multi_processing"
    assert "--direct_running_mode=multi_processing" in local_beam_args(large)
    assert local_beam_args(small)[:3] == ["--runner=FnApiRunner", "--direct_running_mode=in_memory",
                                          "--direct_num_workers=1"]
    # An explicit mode is kept whatever the size; no data yet: auto says in_memory and
    # CsvExampleGen reports the missing input.
    assert large.replace(beam_mode="in_memory").resolved_beam_mode() == "in_memory"
    assert small.replace(beam_mode="multi_processing").resolved_beam_mode() == "multi_processing"
    assert load_config(None, data_dir=str(tmp_path / "none")).resolved_beam_mode() == "in_memory"


def test_beam_mode_is_checked(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(None, beam_mode="fast")
    assert "auto, in_memory, multi_processing" in " ".join(problems(caught.value))


def test_loss_precision_is_checked(tmp_path):
    path, problem = only("model:\n  loss_precision: float16\n", tmp_path)
    assert problem == ("model.loss_precision: must be one of auto, float32, bfloat16, not "
                       f"'float16' (from {path}) at line 2")


def test_item_catalog_gen_runs_in_memory_when_only_the_interactions_are_large(tmp_path):
    # items.csv is small beside the interactions: ItemCatalogGen need not pay Beam's
    # multi-processing start-up (12.8 s against 2.6 s on ML-100K) when the others need it.
    from pipeline.config import AUTO_IN_MEMORY_MAX_BYTES
    from pipeline.local_runner import local_pipeline

    data = _interactions(tmp_path, AUTO_IN_MEMORY_MAX_BYTES + 1)
    (tmp_path / "data" / "items.csv").write_text("item_id,title,num_ratings\n1,One,3\n")
    config = load_config(None, data_dir=data, output_dir=str(tmp_path / "run"))

    def mode(component) -> str:   # the last flag wins in Beam's option parsing
        flags = [flag for flag in component.executor_spec.beam_pipeline_args
                 if flag.startswith("--direct_running_mode=")]
        return flags[-1].split("=", 1)[1]

    components = {c.id: c for c in local_pipeline(config).components}
    assert mode(components["ItemCatalogGen"]) == "in_memory"
    assert mode(components["CsvExampleGen"]) == mode(components["Transform"]) \
        == "multi_processing"
    # An explicit mode is every component's.
    explicit = {c.id: c for c in local_pipeline(config.replace(beam_mode="multi_processing"))
                .components}
    assert mode(explicit["ItemCatalogGen"]) == "multi_processing"
