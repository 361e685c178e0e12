"""The training loss's ceiling on this machine: how many examples per second the in-batch
softmax alone allows, beside the machine's own float32 matrix-product rate.

A training step's floor is the fused loss and its gradients (trainer.model's
_loss_and_gradients, the function every training step calls): three [B, B] x [B, D] matrix
products and the [B, B] softmax. Timed here on random unit vectors per batch size B and
vector width D (D + 1 with the item bias) and product precision (model.loss_precision:
float32, and bfloat16 inputs with float32 sums), next to one large float32 matrix product, so
the printout says how far the loss is from this machine's peak, what bfloat16 gains, and what
examples/s no training step of that shape can pass:

    .venv/bin/python bench/loss_ceiling.py
"""

import argparse
import functools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import towergraph.tf_env  # noqa: E402,F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf  # noqa: E402

from trainer.hardware import loss_precision  # noqa: E402
from trainer.model import _loss_and_gradients  # noqa: E402


def seconds_per_call(fn, calls: int) -> float:
    for _ in range(3):  # tracing, XLA compilation
        out = fn()
    started = time.perf_counter()
    for _ in range(calls):
        out = fn()
    (out[0] if isinstance(out, (tuple, list)) else out).numpy()
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1024,512", help="batch sizes")
    parser.add_argument("--dims", default="128,64", help="embedding_dim values")
    parser.add_argument("--precisions", default="float32,bfloat16",
                        help="model.loss_precision values")
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    square = tf.random.normal([2048, 2048])
    peak = 2 * 2048 ** 3 / seconds_per_call(lambda: tf.matmul(square, square), 20) / 1e9
    print(f"float32 matrix product 2048 x 2048 x 2048: {peak:.1f} GFLOP/s")
    precisions = args.precisions.split(",")
    print(f"auto on this machine: {loss_precision('auto')}")
    print(f"{'batch':>6} {'dim':>5} {'precision':>9} {'ms/batch':>9} {'ms/1024 ex':>11} "
          f"{'GFLOP/s':>8} {'of peak':>8} {'ceiling ex/s':>13} {'x ' + precisions[0]:>10}")
    for batch in (int(value) for value in args.batches.split(",")):
        for dim in (int(value) for value in args.dims.split(",")):
            queries = tf.math.l2_normalize(tf.random.normal([batch, dim + 1]), -1)
            candidates = tf.math.l2_normalize(tf.random.normal([batch, dim + 1]), -1)
            rows = tf.random.uniform([batch], 0, 10_000, tf.int32)
            probability = tf.fill([batch], 1e-4)
            first = None
            for precision in precisions:
                seconds = seconds_per_call(functools.partial(
                    _loss_and_gradients, queries, candidates, rows, probability, 0.3, 0,
                    tf.as_dtype(precision)), args.calls)
                first = first or seconds
                rate = 3 * 2 * batch * batch * (dim + 1) / seconds / 1e9
                print(f"{batch:>6} {dim:>5} {precision:>9} {seconds * 1e3:>9.2f}"
                      f" {seconds * 1e3 * 1024 / batch:>11.2f} {rate:>8.1f} {rate / peak:>8.0%}"
                      f" {batch / seconds:>13,.0f} {first / seconds:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
