"""`towergraph serve`: argument checks, the hand-over to a real tensorflow_model_server, and the
stand-in started and stopped as a process."""

import argparse
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

import tiny_world
from serving.serve_cli import add_serve_command, run_serve
from serving.standin.layout import LayoutError, find_model_base_path

ROOT = Path(__file__).resolve().parents[1]
MODEL = tiny_world.MODEL_NAME


def parse(*argv):
    parser = argparse.ArgumentParser(prog="towergraph")
    add_serve_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["serve", *argv])


def test_defaults():
    args = parse("--model-dir", "somewhere")
    assert (args.model_name, args.rest_port, args.grpc_port, args.host, args.poll_seconds) == \
        (MODEL, 8501, 8500, "127.0.0.1", 2.0)
    assert (args.max_batch_size, args.max_request_bytes) == (1000, 4 * 1024 * 1024)
    assert args.func is run_serve


@pytest.mark.parametrize("argv", [
    [], ["--model-dir", "d", "--rest-port", "70000"], ["--model-dir", "d", "--grpc-port", "x"],
    ["--model-dir", "d", "--poll-seconds", "-1"], ["--model-dir", "d", "--max-batch-size", "0"],
    ["--model-dir", "d", "--label", "stable"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        parse(*argv)
    assert caught.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_no_versions_is_a_clear_error(tmp_path, capsys):
    (tmp_path / MODEL / "not-a-version").mkdir(parents=True)
    assert run_serve(parse("--model-dir", str(tmp_path))) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: no model versions under") and "version directories" in error


def test_missing_dir_is_a_clear_error(tmp_path, capsys):
    assert run_serve(parse("--model-dir", str(tmp_path / "nope"))) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_model_dir_is_a_serving_dir_or_a_model_base_path(tmp_path):
    (tmp_path / MODEL / "3").mkdir(parents=True)
    assert find_model_base_path(tmp_path, MODEL) == (tmp_path / MODEL).resolve()
    assert find_model_base_path(tmp_path / MODEL, MODEL) == (tmp_path / MODEL).resolve()
    with pytest.raises(LayoutError):
        find_model_base_path(tmp_path, "other")


def test_versions_that_cannot_load_fail_startup(tmp_path, capsys):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    assert run_serve(parse("--model-dir", str(tmp_path), "--standin", "--rest-port", "0",
                           "--grpc-port", "0")) == 1
    assert "could be loaded" in capsys.readouterr().err


def test_a_port_in_use_fails_startup(tiny_model_base, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_serve(parse("--model-dir", str(tiny_model_base), "--standin",
                               "--rest-port", str(port), "--grpc-port", "0")) == 1
    assert "cannot listen for REST" in capsys.readouterr().err


def run_cli(*argv, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "serving.serve_cli", "serve", *argv],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def fake_model_server(tmp_path):
    """A `tensorflow_model_server` on PATH that records its arguments."""
    bin_dir, record = tmp_path / "bin", tmp_path / "argv.txt"
    bin_dir.mkdir()
    script = bin_dir / "tensorflow_model_server"
    script.write_text(f"#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > {record}\n")
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return env, record


def test_execs_tensorflow_model_server_when_on_path(tmp_path, fake_model_server):
    env, record = fake_model_server
    (tmp_path / "serving" / MODEL / "1").mkdir(parents=True)
    result = run_cli("--model-dir", str(tmp_path / "serving"), "--rest-port", "9501",
                     "--grpc-port", "9500", "--poll-seconds", "0.5", "--host", "0.0.0.0", env=env)
    assert result.returncode == 0, result.stderr
    assert "Running tensorflow_model_server" in result.stdout
    assert record.read_text().split() == [
        "--port=9500", "--rest_api_port=9501", "--file_system_poll_wait_seconds=1",
        f"--model_name={MODEL}", f"--model_base_path={(tmp_path / 'serving' / MODEL).resolve()}"]


def test_labels_go_to_a_model_config_file(tmp_path, fake_model_server):
    env, record = fake_model_server
    (tmp_path / "2").mkdir()
    result = run_cli("--model-dir", str(tmp_path), "--label", "stable=2", "--host", "0.0.0.0",
                     env=env)
    assert result.returncode == 0, result.stderr
    flags = dict(arg.split("=", 1) for arg in record.read_text().split())
    config = Path(flags["--model_config_file"]).read_text()
    assert f'base_path: "{tmp_path.resolve()}"' in config
    assert 'version_labels { key: "stable" value: 2 }' in config
    assert "--model_name" not in flags


def test_standin_process_serves_until_sigterm(tiny_model_base, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "stderr.txt", "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.serve_cli", "serve", "--model-dir",
             str(tiny_model_base.parent), "--standin", "--rest-port", "0", "--grpc-port", "0"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    try:
        output = []
        while not output or not output[-1].startswith("Ctrl-C"):
            output.append(lines.get(timeout=120))
        rest_url = next(line for line in output if line.lstrip().startswith("REST")).split()[-1]
        assert rest_url.startswith("http://127.0.0.1:") and rest_url.endswith(f"/models/{MODEL}")
        status = requests.get(rest_url, timeout=30).json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert any("gRPC  127.0.0.1:" in line for line in output)


def test_the_real_server_never_runs_when_one_address_is_asked_for(tmp_path, fake_model_server):
    """tensorflow_model_server has no host flag (it listens on every interface), so the default
    --host 127.0.0.1 runs the stand-in (here it cannot load the fake version: exit 1)."""
    env, record = fake_model_server
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    result = run_cli("--model-dir", str(tmp_path), "--rest-port", "0", "--grpc-port", "0",
                     env=env, timeout=120)
    assert not record.exists(), "tensorflow_model_server was started on every interface"
    assert "always listens on every interface" in result.stderr
    assert result.returncode == 1 and "could be loaded" in result.stderr


def test_help_documents_the_limits(capsys):
    with pytest.raises(SystemExit):
        parse("--help")
    text = " ".join(capsys.readouterr().out.split())
    for words in ("Connection limits", "408", "431", "503", "--max-request-bytes",
                  "RESOURCE_EXHAUSTED"):
        assert words in text
