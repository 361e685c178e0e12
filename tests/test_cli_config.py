"""`towergraph run` with a bad config or bad flags: `error: ...` naming the file, line and
setting (or the flag), exit code 2 (1 means "gate rejected"), never a traceback, and the
pipeline is not started: the config is checked before TFX is imported.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from towergraph.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_pipeline(monkeypatch):
    """Importing the local runner (TFX) fails here: a config error must come first."""
    monkeypatch.setitem(sys.modules, "pipeline.local_runner", None)


def run(tmp_path, capsys, yaml_text=None, *flags):
    argv = ["run", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "out")]
    path = None
    if yaml_text is not None:
        path = tmp_path / "config.yaml"
        path.write_text(yaml_text)
        argv += ["--config", str(path)]
    code = main(argv + list(flags))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err, path


@pytest.mark.parametrize("text,message", [
    ("model:\n  epochs: 2.5\n", "model.epochs: expected an integer, got 2.5 (from {path}) at line 2"),
    ("model:\n  epochs: ten\n", "model.epochs: expected an integer, got 'ten' (from {path}) at line 2"),
    ("model:\n  embedding_dim: true\n",
     "model.embedding_dim: expected an integer, got true (from {path}) at line 2"),
    ("- epochs: 3\n", "expected a mapping of settings (name: value lines), got a list (from {path})"),
    ("model: [3]\n", "model: expected a mapping of settings (name: value lines), got a list "
                     "(from {path}) at line 1"),
    ("top_itmes: 3\n", "top_itmes: unknown setting; known: pipeline_name,"),
    ("model:\n  epochs: 3\n   seed: 1\n", "{path} is not valid YAML: line 3, column 8: "
                                          "mapping values are not allowed here"),
    ("model: {epochs: 3\n", "{path} is not valid YAML: line 2, column 1: "),
])
def test_bad_yaml_exits_2_naming_file_line_and_setting(tmp_path, capsys, text, message):
    code, err, path = run(tmp_path, capsys, text)
    assert code == 2
    assert err.startswith("error: invalid config:\n  - ")
    assert message.format(path=path) in err


def test_every_problem_of_file_and_flags_at_once(tmp_path, capsys):
    code, err, path = run(tmp_path, capsys, "eval_percent: 100\nmodel:\n  epochs: 2.5\n",
                          "--batch-size", "lots", "--temperature", "0", "--gate-ks", "10,x")
    assert code == 2
    assert err.splitlines() == [
        "error: invalid config:",
        "  - gate_ks: expected a list of integers separated by commas, e.g. 256,128; item 2: "
        "expected an integer, got 'x' (from flag --gate-ks)",
        f"  - model.epochs: expected an integer, got 2.5 (from {path}) at line 3",
        "  - model.batch_size: expected an integer, got 'lots' (from flag --batch-size)",
        "  - model.temperature: must be positive, not 0.0 (from flag --temperature)",
        f"  - eval_percent: must be between 1 and 99, not 100 (from {path}) at line 1"]


def test_flags_override_the_file_and_are_checked(tmp_path, capsys):
    code, err, _ = run(tmp_path, capsys, "model:\n  epochs: 3\n", "--epochs", "0")
    assert code == 2 and "model.epochs: must be positive, not 0 (from flag --epochs)" in err


def test_missing_config_file(tmp_path, capsys):
    code = main(["run", "--config", str(tmp_path / "nowhere.yaml")])
    assert code == 2
    assert f"config file {tmp_path / 'nowhere.yaml'} does not exist" in capsys.readouterr().err


def test_a_valid_config_gets_past_the_config_check(tmp_path, capsys):
    """The same command with a good file goes on to the pipeline (blocked here by the fixture):
    the exit code 2 above really comes from the config check."""
    with pytest.raises(ImportError):
        run(tmp_path, capsys, "model:\n  epochs: 3\n", "--top-items", "10")


def test_bad_config_in_a_fresh_process_is_fast_and_imports_no_tfx(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("model:\n  epochs: 2.5\n")
    probe = ("import sys, runpy\nsys.argv = ['towergraph', 'run', '--config', sys.argv[1]]\n"
             "try:\n    runpy.run_module('towergraph.cli', run_name='__main__')\n"
             "except SystemExit as exit:\n"
             "    print('tfx' in sys.modules or 'tensorflow' in sys.modules)\n"
             "    raise\n")
    result = subprocess.run([sys.executable, "-c", probe, str(path)], cwd=REPO,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2, result.stderr
    assert result.stdout.strip() == "False"
    assert result.stderr == (f"error: invalid config:\n  - model.epochs: expected an integer, "
                             f"got 2.5 (from {path}) at line 2\n")
