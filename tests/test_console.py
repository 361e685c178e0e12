"""`towergraph run`'s console: progress lines on the console, every other output in a log file.

The renderer and the TFX log matching are tested with real log records (fast); a failing run,
quiet and verbose, with real `towergraph run` subprocesses on a tiny synthetic catalogue (stdout
is a pipe there, so the display is plain lines). A whole successful run's console:
tests/test_pipeline_e2e.py.
"""

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from absl import logging as absl_logging

from towergraph.console import (COMPONENT_FINISHED, COMPONENT_RUNNING, EXECUTION_CACHED,
                                EXECUTION_NEW, TRAINING_LOGGER, ComponentProgress, PlainRenderer,
                                log_path_for, quiet_output, renderer_for)

BIN = Path(sys.executable).parent


@pytest.fixture
def plain():
    """A ComponentProgress writing plain lines to a buffer, listening as `towergraph run` does."""
    stream = io.StringIO()
    progress = ComponentProgress(PlainRenderer(stream))
    with progress.listening():
        yield progress, lambda: stream.getvalue().splitlines()


def _component(name, cached=False):
    """What TFX 1.16's LocalDagRunner and Launcher log for one component (absl logging)."""
    absl_logging.info(COMPONENT_RUNNING, name)
    absl_logging.info("Running launcher for %s", name)
    absl_logging.info(EXECUTION_CACHED if cached else EXECUTION_NEW, 7)
    absl_logging.info(COMPONENT_FINISHED, name)


def test_plain_lines_one_per_event(plain):
    progress, lines = plain
    progress.start(["CsvExampleGen", "Transform", "Trainer"])
    _component("CsvExampleGen", cached=True)
    absl_logging.info(COMPONENT_RUNNING, "Transform")
    absl_logging.info(EXECUTION_NEW, 8)
    assert lines()[-1].split() == ["Transform", "running"]
    absl_logging.info(COMPONENT_FINISHED, "Transform")
    words = [line.split() for line in lines()]
    assert [w[:2] for w in words] == [["CsvExampleGen", "cached"], ["Transform", "running"],
                                      ["Transform", "done"]]
    assert words[0][3] == words[2][3] == "s" and float(words[2][2]) >= 0
    assert progress.states == {"CsvExampleGen": "cached", "Transform": "done",
                               "Trainer": "waiting"}


def test_epoch_lines_are_shown_under_the_running_component(plain):
    progress, lines = plain
    progress.start(["Trainer"])
    absl_logging.info(COMPONENT_RUNNING, "Trainer")
    absl_logging.info(EXECUTION_NEW, 9)
    logging.getLogger(TRAINING_LOGGER).info("candidate: epoch 1/2, loss 5.1000, 0.3 s")
    logging.getLogger("tensorflow").warning("not for the console")
    absl_logging.warning("ArtifactQuery.property_predicate is not supported.")
    assert lines()[-1].split() == ["Trainer", "candidate:", "epoch", "1/2,", "loss", "5.1000,",
                                   "0.3", "s"]
    assert len(lines()) == 2


def test_components_after_one_that_lowers_absl_verbosity_are_still_shown(plain):
    """Transform parses absl's flags, which sets the absl logger to WARNING."""
    progress, lines = plain
    progress.start(["Transform", "Trainer"])
    verbosity = absl_logging.get_verbosity()
    try:
        absl_logging.info(COMPONENT_RUNNING, "Transform")
        absl_logging.set_verbosity(absl_logging.WARNING)
        absl_logging.info(COMPONENT_FINISHED, "Transform")
        _component("Trainer")
    finally:
        absl_logging.set_verbosity(verbosity)
    assert [line.split()[:2] for line in lines()] == [
        ["Transform", "done"], ["Trainer", "running"], ["Trainer", "done"]]


def test_a_failing_component_is_named(plain):
    progress, lines = plain
    progress.start(["SchemaGen", "Transform"])
    absl_logging.info(COMPONENT_RUNNING, "Transform")
    absl_logging.info(EXECUTION_NEW, 3)
    assert progress.failed() == "Transform"
    assert lines()[-1].split()[:2] == ["Transform", "FAILED"]
    assert progress.failed() is None     # nothing running any more


def test_tfx_still_logs_the_messages_the_progress_listens_for():
    """The component events come from TFX's log messages: a TFX upgrade that rewords them
    must fail here rather than leave the console silent."""
    import importlib.util
    tfx = Path(importlib.util.find_spec("tfx").submodule_search_locations[0]) / "orchestration"
    runner = (tfx / "local" / "local_dag_runner.py").read_text()
    launcher = (tfx / "portable" / "launcher.py").read_text()
    assert f"logging.info('{COMPONENT_RUNNING}', node_id)" in runner
    assert f"logging.info('{COMPONENT_FINISHED}', node_id)" in runner
    assert f"logging.info('{EXECUTION_CACHED}', execution.id)" in launcher
    assert f"logging.info('{EXECUTION_NEW}', execution.id)" in launcher


def test_a_pipe_gets_plain_lines():
    assert isinstance(renderer_for(io.StringIO()), PlainRenderer)
    with open(os.devnull, "w", encoding="utf-8") as pipe_like:
        assert isinstance(renderer_for(pipe_like), PlainRenderer)


def test_quiet_output_sends_fds_children_and_logging_to_the_log(tmp_path, capfd):
    log = tmp_path / "logs" / "run.log"
    console = io.StringIO()
    with quiet_output(str(log), console) as shown:
        shown.write("progress line\n")
        os.write(1, b"native stdout\n")
        os.write(2, b"native stderr\n")     # what TensorFlow's C++ runtime does
        print("python print")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child\\n')"],
                       check=True)            # a Beam worker process
        logging.getLogger("tfx").info("an INFO record")
    os.write(1, b"after\n")
    text = log.read_text()
    for line in ("native stdout", "native stderr", "python print", "child", "an INFO record"):
        assert line in text
    assert console.getvalue() == "progress line\n"
    captured = capfd.readouterr()
    assert captured.out == "after\n" and captured.err == ""


def test_quiet_output_logs_the_traceback_and_restores_the_streams(tmp_path):
    log = tmp_path / "run.log"
    stdout, stderr, level = sys.stdout, sys.stderr, logging.getLogger().level
    with pytest.raises(KeyError):
        with quiet_output(str(log), io.StringIO()):
            raise KeyError("user_id")
    assert (sys.stdout, sys.stderr, logging.getLogger().level) == (stdout, stderr, level)
    assert "Traceback" in log.read_text() and "KeyError: 'user_id'" in log.read_text()


def test_epoch_log_shows_the_loss_and_never_metrics_no_batch_computed(caplog):
    import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
    import tensorflow as tf
    from trainer.progress import EpochLog

    class Model(tf.keras.Model):
        """Like the two-tower: a top-k-style metric that only evaluation updates."""

        def __init__(self):
            super().__init__()
            self.dense = tf.keras.layers.Dense(1)
            self.top_k = tf.keras.metrics.Mean(name="top_10_accuracy")
            self.mae = tf.keras.metrics.Mean(name="mae")

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((self.dense(x) - y) ** 2)
            self.optimizer.apply_gradients(zip(tape.gradient(loss, self.trainable_variables),
                                               self.trainable_variables))
            self.mae.update_state(tf.abs(self.dense(x) - y))
            return {"loss": loss, "top_10_accuracy": self.top_k.result(),
                    "mae": self.mae.result()}

    model = Model()
    model.compile(optimizer="sgd")
    data = tf.data.Dataset.from_tensor_slices(([[1.0]] * 8, [[2.0]] * 8)).batch(4)
    with caplog.at_level(logging.INFO, logger=TRAINING_LOGGER):
        model.fit(data, epochs=2, verbose=0, callbacks=[EpochLog("candidate")])
    lines = [record.getMessage() for record in caplog.records if record.name == TRAINING_LOGGER]
    assert [line.split(",")[0] for line in lines] == ["candidate: epoch 1/2",
                                                      "candidate: epoch 2/2"]
    assert all(" loss " in line and " mae " in line and line.endswith(" s") for line in lines)
    assert not any("top_10" in line for line in lines)


def test_log_path_is_under_the_output_folder():
    import datetime
    path = log_path_for("work/run", datetime.datetime(2026, 1, 2, 3, 4, 5))
    assert path == os.path.join("work/run", "logs", "run-20260102-030405.log")


# --- real runs ---------------------------------------------------------------------------
# The quiet console of a whole successful run: tests/test_pipeline_e2e.py, whose first run is a
# `towergraph run` subprocess.


def _towergraph(*args, **kwargs):
    return subprocess.run([str(BIN / "towergraph"), *map(str, args)], capture_output=True,
                          text=True, **kwargs)


@pytest.fixture
def broken_data(tmp_path):
    """A tiny synthetic catalogue with a hand-edited row CsvExampleGen cannot parse."""
    data = tmp_path / "data"
    made = _towergraph("data", "synthetic", "--output", data, "--users", 50, "--items", 20,
                       "--genres", 2, "--ratings-per-user", 5)
    assert made.returncode == 0, made.stderr
    with open(data / "interactions" / "interactions.csv", "a", encoding="utf-8") as handle:
        handle.write("7,8,5,A Title,genre_01,one column too many\n")   # a hand-edited row
    return data


@pytest.mark.slow
def test_a_failing_component_shows_its_name_the_error_and_the_log(broken_data, tmp_path):
    result = _towergraph("run", "--data", broken_data, "--output", tmp_path / "run")
    assert result.returncode == 3
    [log] = (tmp_path / "run" / "logs").glob("run-*.log")
    error, where = result.stderr.strip().splitlines()[0], result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: CsvExampleGen failed: ") and len(error) > 40, result.stderr
    assert where == f"full log, with the traceback: {log}"
    assert result.stdout.splitlines()[-1].split()[:2] == ["CsvExampleGen", "FAILED"]
    assert "Traceback" in log.read_text() and "Traceback" not in result.stderr


@pytest.mark.slow
def test_verbose_shows_the_logs_and_the_traceback_on_the_console(broken_data, tmp_path):
    result = _towergraph("run", "--data", broken_data, "--output", tmp_path / "run",
                         "--verbose")
    assert result.returncode == 3
    # TFX's INFO logs and the traceback on the console; no log file is written.
    assert "Component CsvExampleGen is running." in result.stderr
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: CsvExampleGen failed: ")
    assert not (tmp_path / "run" / "logs").exists()
