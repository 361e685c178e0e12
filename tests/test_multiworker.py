"""Multi-worker training for real: two worker processes on 127.0.0.1, each with its TF_CONFIG,
train the tiny world's model together under MultiWorkerMirroredStrategy (trainer/distribute.py)
with trainer.train.train, evaluate it together, only the chief exports (trainer.run's
exported), and the served model continues the candidate as run_fn makes it (each worker from
its own export of the candidate). One process trains the same data with the same settings: the two workers' top-10
accuracy on the training split must be within TOLERANCE of it, and every epoch's mean loss
within LOSS_TOLERANCE.

Why a tolerance and not equality: both runs see the same global batches and the same
initialisation recipe, but the batches' order per epoch (a repeated shuffle vs a re-created
one) and the float summation order differ. Run as a script, this module is one worker.
"""

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer import distribute

pytestmark = pytest.mark.slow  # three trainings, two of them in worker processes

ROOT = Path(__file__).resolve().parents[1]
# Absolute top-10 accuracy (fraction of the training interactions whose item is in the user's
# top 10 of the 40-item catalogue) between one process and two workers.
TOLERANCE = 0.1
# Relative difference of each epoch's mean training loss (summed over the global batch).
LOSS_TOLERANCE = 0.02
TOP_10 = "factorized_top_k/top_10_categorical_accuracy"
# A global batch that splits unevenly across two replicas (33 + 32), as does the last batch
# of the 640 training interactions (55: 28 + 27).
MODEL = {"embedding_dim": 16, "candidate_layers": [32], "batch_size": 65,
         "learning_rate": 0.2, "epochs": 8, "refit_on_all": False}
REFIT_EPOCHS = 2
TIMEOUT_S = 240


def test_tf_config_of_a_vertex_chief_and_worker_and_of_one_process():
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    chief = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})}
    worker0 = {"TF_CONFIG": json.dumps({"cluster": cluster,
                                        "task": {"type": "worker", "index": 0}})}
    assert distribute.num_workers(chief) == 3
    assert distribute.is_chief(chief) and not distribute.is_chief(worker0)
    # Without a chief task, worker 0 is the chief.
    workers = {"worker": ["a:1", "b:1"]}
    assert distribute.is_chief({"TF_CONFIG": json.dumps(
        {"cluster": workers, "task": {"type": "worker", "index": 0}})})
    assert not distribute.is_chief({"TF_CONFIG": json.dumps(
        {"cluster": workers, "task": {"type": "worker", "index": 1}})})
    assert distribute.num_workers({}) == 1 and distribute.is_chief({})
    # A parameter server or an evaluator is not a training worker.
    assert distribute.num_workers({"TF_CONFIG": json.dumps(
        {"cluster": {"chief": ["a:1"], "ps": ["b:1"]}, "task": {"type": "chief"}})}) == 1


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _worker_env(cluster, index):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
               TF_CONFIG=json.dumps({"cluster": cluster,
                                     "task": {"type": "worker", "index": index}}),
               # Two workers share this machine's cores: one thread pool each.
               TF_NUM_INTEROP_THREADS="1", TF_NUM_INTRAOP_THREADS="1")
    return env


@pytest.fixture(scope="module")
def transformed(tiny_interactions, tmp_path_factory):
    """The tiny world's Transform output and train/eval files, as tests/test_trainer_run.py
    makes them."""
    from test_trainer_run import _rows, _transformed

    return _transformed(_rows(tiny_interactions), tmp_path_factory.mktemp("multiworker"))


def test_two_workers_train_to_the_recall_of_one_process(transformed, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    started = time.monotonic()
    workers = [subprocess.Popen(
        [sys.executable, __file__, str(transformed), str(tmp_path / f"worker{index}")],
        env=_worker_env(cluster, index), cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for index in range(2)]
    try:
        outputs = [worker.communicate(timeout=TIMEOUT_S)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    two_workers_s = time.monotonic() - started
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-4000:]
    results = [json.loads((tmp_path / f"worker{index}" / "result.json").read_text())
               for index in range(2)]
    # The metrics are summed over both workers: each reports the same, global, numbers.
    assert results[0]["metrics"][TOP_10] == pytest.approx(results[1]["metrics"][TOP_10])
    assert [result["replicas"] for result in results] == [2, 2]
    assert [result["chief"] for result in results] == [True, False]
    # Only the chief exported; the other worker left nothing behind.
    assert (tmp_path / "worker0" / "model" / "saved_model.pb").exists()
    assert not (tmp_path / "worker1" / "model").exists()

    started = time.monotonic()
    one = _train_and_evaluate(transformed, tmp_path / "one")
    one_process_s = time.monotonic() - started
    assert one["replicas"] == 1
    two = results[0]
    print(f"top-10 accuracy on the training split: one process {one['metrics'][TOP_10]:.4f} "
          f"({one_process_s:.1f} s), two workers {two['metrics'][TOP_10]:.4f} "
          f"({two_workers_s:.1f} s); last epoch's mean loss {one['losses'][-1]:.2f} vs "
          f"{two['losses'][-1]:.2f}; tolerances {TOLERANCE}, {LOSS_TOLERANCE:.0%}")
    # Both learned (chance is 10 / 40) and agree within the tolerance.
    assert one["metrics"][TOP_10] > 0.5
    assert two["metrics"][TOP_10] == pytest.approx(one["metrics"][TOP_10], abs=TOLERANCE)
    # The logged loss is the global batch's under both: the same descent, epoch by epoch.
    assert two["losses"] == pytest.approx(one["losses"], rel=LOSS_TOLERANCE)
    assert two["losses"][-1] < 0.95 * two["losses"][0]
    # The served model continued the candidate under both: every item and user carried over
    # from the candidate's export, and its top-10 accuracy agrees within the tolerance.
    for result in (one, two):
        report = result["served_warm_start"]
        assert report["base_model"] and report["items"] == {"carried": 40, "new": 0,
                                                            "dropped": 0}
        assert report["users"]["carried"] == 80 and report["layers"]["fresh"] == []
        assert result["served_metrics"][TOP_10] > 0.5
    assert two["served_metrics"][TOP_10] == pytest.approx(one["served_metrics"][TOP_10],
                                                          abs=TOLERANCE)


def _train_and_evaluate(root: Path, out: Path) -> dict:
    """What run_fn does for the candidate: train, evaluate, export (the chief only). The
    metrics are of the training split: what both learned (held-out top-10 accuracy in this
    tiny world is near chance after a few epochs: the user ids are memorised)."""
    strategy = distribute.strategy()   # before any other TensorFlow op
    import tensorflow as tf
    import tensorflow_transform as tft

    from trainer.config import ModelConfig, from_mapping
    from trainer.model import MEAN_LOSS
    from trainer.run import exported, serving_model
    from trainer.train import evaluate, train

    config = from_mapping(ModelConfig, MODEL, "test")
    transform_output = tft.TFTransformOutput(str(root / "transform"))
    losses = []
    record = tf.keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: losses.append(float(logs[MEAN_LOSS])))
    model = train(transform_output, [str(root / "train.gz")], config, callbacks=[record])
    metrics = evaluate(model, transform_output, [str(root / "train.gz")])
    # The served model, as run_fn makes it by default: the candidate trained on (refit_epochs)
    # on train + eval, each worker warm-starting from its own export of the candidate.
    refit = dataclasses.replace(config, refit_on_all=True, refit_epochs=REFIT_EPOCHS)
    with exported(model, str(out / "model"), max_k=10) as candidate_export:
        served, _ = serving_model(refit, model, candidate_export, None, transform_output,
                                  [str(root / "train.gz"), str(root / "eval.gz")], None)
    served_metrics = evaluate(served, transform_output, [str(root / "train.gz")])
    out.mkdir(parents=True, exist_ok=True)
    result = {"metrics": {name: float(value) for name, value in metrics.items()},
              "served_metrics": {name: float(value) for name, value in served_metrics.items()},
              "served_warm_start": served.warm_start_report.as_json(),
              "losses": losses, "replicas": strategy.num_replicas_in_sync,
              "chief": distribute.is_chief()}
    (out / "result.json").write_text(json.dumps(result))
    return result


if __name__ == "__main__":
    _train_and_evaluate(Path(sys.argv[1]), Path(sys.argv[2]))
