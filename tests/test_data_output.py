"""The output folder of `data prepare|synthetic`: replaced only when it is provably ours.

A prepared folder is recognised by its whole layout and manifest, never by a file name; every
other folder is refused (DataError, exit code 2) with nothing deleted. Temporary folders are
removed on errors and on SIGTERM/SIGINT, and a killed run's leftover is removed by the next run
only when its name and our marker file prove it ours.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.data import DataError, generate_synthetic, prepare
from pipeline.data.atomic import MARKER
from pipeline.data.cli import add_data_commands

TOWERGRAPH = [sys.executable, "-m", "towergraph.cli"]
ROOT = Path(__file__).resolve().parents[1]
RATINGS = "user_id,item_id,rating\nu1,1,4\nu2,2,3\n"
ITEMS = "item_id,title\n1,Alpha\n2,Beta\n"


def _input(root):
    root.mkdir(exist_ok=True)
    (root / "ratings.csv").write_text(RATINGS)
    (root / "items.csv").write_text(ITEMS)
    return root


def _snapshot(folder):
    return {str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
            for path in sorted(folder.rglob("*"))}


def _prepared(tmp_path, name="out"):
    out = tmp_path / name
    prepare("csv", _input(tmp_path / "in"), out)
    return out


def _refused(tmp_path, out, reason):
    before = _snapshot(out)
    with pytest.raises(DataError, match="refusing to replace") as caught:
        prepare("csv", _input(tmp_path / "in"), out)
    assert reason in str(caught.value) and "nothing was deleted" in str(caught.value)
    assert _snapshot(out) == before
    assert not [name for name in os.listdir(out.parent) if name.startswith(".")]


def test_a_web_app_with_a_manifest_json_is_not_replaced(tmp_path):
    # Issue 14: a PWA's or browser extension's folder holds a manifest.json too.
    app = tmp_path / "app"
    app.mkdir()
    (app / "manifest.json").write_text('{"name": "My app", "start_url": "/"}')
    (app / "index.html").write_text("<html></html>")
    _refused(tmp_path, app, "index.html")


def test_a_manifest_json_of_another_shape_is_not_replaced(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "manifest.json").write_text('{"manifest_version": 3, "name": "extension"}')
    _refused(tmp_path, app, "interactions")


def test_a_prepared_folder_with_an_extra_file_is_not_replaced(tmp_path):
    out = _prepared(tmp_path)
    (out / "notes.txt").write_text("mine")
    _refused(tmp_path, out, "notes.txt")


def test_a_prepared_folder_with_an_extra_file_under_interactions_is_not_replaced(tmp_path):
    out = _prepared(tmp_path)
    (out / "interactions" / "more.csv").write_text("mine")
    _refused(tmp_path, out, "more.csv")


def test_a_manifest_missing_a_key_is_not_replaced(tmp_path):
    out = _prepared(tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["interactions_sha256"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    _refused(tmp_path, out, "interactions_sha256")


def test_edited_interactions_are_not_replaced(tmp_path):
    out = _prepared(tmp_path)
    with open(out / "interactions" / "interactions.csv", "a") as handle:
        handle.write("u9,1,5,Alpha\n")
    _refused(tmp_path, out, "sha256")


def test_a_manifest_that_is_not_json_is_not_replaced(tmp_path):
    out = _prepared(tmp_path)
    (out / "manifest.json").write_text("not json")
    _refused(tmp_path, out, "manifest.json")


def test_a_symlink_output_is_not_replaced(tmp_path):
    target = _prepared(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(DataError, match="symbolic link"):
        prepare("csv", _input(tmp_path / "in"), link)
    assert link.is_symlink() and (target / "manifest.json").exists()


def test_empty_missing_and_prepared_folders_are_fine(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare("csv", _input(tmp_path / "in"), empty)
    prepare("csv", _input(tmp_path / "in"), tmp_path / "missing" / "deeper")
    prepare("csv", _input(tmp_path / "in"), empty)  # our own output, replaced
    generate_synthetic(empty, users=5, items=5, genres=1, ratings_per_user=2)
    prepare("csv", _input(tmp_path / "in"), empty)  # synthetic output is ours too
    assert sorted(os.listdir(empty)) == ["interactions", "items.csv", "manifest.json"]
    assert sorted(os.listdir(tmp_path)) == ["empty", "in", "missing"]


def test_cli_refusal_exits_2_and_keeps_the_folder(tmp_path, capsys):
    app = tmp_path / "app"
    app.mkdir()
    (app / "manifest.json").write_text("{}")
    parser = argparse.ArgumentParser()
    add_data_commands(parser.add_subparsers(dest="command"))
    for argv in (["prepare", "--format", "csv", "--input", str(_input(tmp_path / "in"))],
                 ["synthetic", "--users", "5", "--items", "5", "--genres", "1",
                  "--ratings-per-user", "2"]):
        args = parser.parse_args(["data", *argv, "--output", str(app)])
        assert args.func(args) == 2
        assert "refusing to replace" in capsys.readouterr().err
        assert os.listdir(app) == ["manifest.json"]


# --- temporary folders: errors, signals, leftovers of killed runs ---

def _temporaries(parent, name, kind=""):
    """Our leftovers beside `name`: `.name.tmp-*` (kind "tmp"), `.name.old-*`, or any."""
    return [entry for entry in os.listdir(parent) if entry.startswith(f".{name}.{kind}")]


def _big_input(root, ratings=400_000):
    root.mkdir()
    with open(root / "ratings.csv", "w") as handle:
        handle.write("user_id,item_id,rating\n")
        handle.writelines(f"{row // 40},{row % 997},{row % 5 + 1}\n" for row in range(ratings))
    (root / "items.csv").write_text("item_id,title\n" + "".join(
        f"{item},Title {item}\n" for item in range(997)))
    return root


@contextlib.contextmanager
def _sigint_not_ignored():
    """The child gets SIGINT's default disposition, as a user's foreground `towergraph data
    ...` has: a job started in the background (`make test &`, nohup) inherits SIGINT ignored,
    and a Python child then never turns Ctrl-C into KeyboardInterrupt. An ignored signal stays
    ignored across exec and a handled one is reset to the default, so the test process
    handles SIGINT while it starts the child.

    Not a preexec_fn resetting it in the child: that makes Python fork() instead of vfork(),
    which runs gRPC's fork handlers in the child, and since grpcio 1.80 (here 1.85.1, its
    channels opened by earlier tests of the same process) such a child may die before exec
    (grpc/grpc#43055): a CI run failed with "Epoll1Poller encountered epoll_wait error: Bad
    file descriptor", and 2 of 100 children started that way died beside an open channel.
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start(tmp_path, *argv):
    with _sigint_not_ignored():
        return subprocess.Popen(TOWERGRAPH + ["data", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


def _signal_inside_temporary(process, parent, name, sent, timeout=60):
    """Delivers `sent` while `process` is provably inside its temporary-folder phase.

    Seeing the folder and then signalling races with the process (a fast write can finish in
    between, and the signal then lands after success). So: stop the process (SIGSTOP), check
    that its `.name.tmp-*` folder exists while it cannot move, and only then queue the signal
    and let it continue; the signal is handled inside the phase. If the folder was gone, let
    it run on and look again.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _temporaries(parent, name, kind="tmp"):
            process.send_signal(signal.SIGSTOP)
            try:
                if _temporaries(parent, name, kind="tmp"):
                    process.send_signal(sent)
                    return
            finally:
                process.send_signal(signal.SIGCONT)
        if process.poll() is not None:
            pytest.fail(f"finished before its temporary folder was seen: "
                        f"{process.communicate()}")
        time.sleep(0.005)
    process.kill()
    pytest.fail("no temporary folder appeared")


@pytest.mark.parametrize("sent, code", [(signal.SIGTERM, 128 + signal.SIGTERM),
                                        (signal.SIGINT, 128 + signal.SIGINT)])
def test_signal_during_prepare_removes_the_temporary_folder(tmp_path, sent, code):
    out = _prepared(tmp_path)
    before = _snapshot(out)
    process = _start(tmp_path, "prepare", "--format", "csv", "--input",
                     str(_big_input(tmp_path / "big")), "--output", str(out))
    _signal_inside_temporary(process, tmp_path, "out", sent)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert "interrupted" in err and str(out) in err
    assert _temporaries(tmp_path, "out") == []
    assert _snapshot(out) == before


def test_sigterm_during_synthetic_removes_the_temporary_folder(tmp_path):
    out = tmp_path / "syn"
    process = _start(tmp_path, "synthetic", "--output", str(out), "--users", "200000",
                     "--items", "2000", "--ratings-per-user", "50")
    _signal_inside_temporary(process, tmp_path, "syn", signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert os.listdir(tmp_path) == []


def test_a_killed_runs_temporary_folder_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "syn"
    process = _start(tmp_path, "synthetic", "--output", str(out), "--users", "200000",
                     "--items", "2000", "--ratings-per-user", "50")
    _signal_inside_temporary(process, tmp_path, "syn", signal.SIGKILL)  # no cleanup can run
    process.communicate(timeout=60)
    assert len(_temporaries(tmp_path, "syn")) == 1  # left behind, with our marker
    # Look-alikes that are not provably ours stay: no marker, wrong name, a live process.
    (tmp_path / ".syn.tmp-0000abcd").mkdir()
    (tmp_path / ".syn.tmp-0000abcd" / "data.csv").write_text("someone's")
    (tmp_path / ".syn.backup").mkdir()
    (tmp_path / ".syn.backup" / MARKER).write_text(json.dumps({"pid": 1}))
    alive = tmp_path / ".syn.tmp-1111abcd"
    alive.mkdir()
    (alive / MARKER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    (alive / "interactions.csv").write_text("being written")
    generate_synthetic(out, users=5, items=5, genres=1, ratings_per_user=2)
    assert sorted(os.listdir(tmp_path)) == [".syn.backup", ".syn.tmp-0000abcd",
                                            ".syn.tmp-1111abcd", "syn"]
