"""Soak: the stand-in under bounded concurrent load while new versions arrive and a corrupt one
is pushed; does it keep answering, how fast, and with which errors?

    .venv/bin/python bench/soak.py --quick                    # ~30 s, the tests' tiny model
    .venv/bin/python bench/soak.py --model-dir work/run/serving [--seconds 20] [--json out.json]

For each concurrency level (1, 8, 32 client threads, half REST and half gRPC from 8 up) it runs
similar_items(k=10) calls for a bounded time and count against `serve_in_process` on 127.0.0.1
(free ports, stopped at the end). During each level a new version is copied in (a hot reload)
and a corrupt version (a saved_model.pb of garbage, numbered higher) is pushed: the server must
keep serving the last good version and take the next good one. Prints a table (level,
requests/s, p50/p99 ms, errors by kind) and which versions were served.
"""

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from serving.client import TowerGraphClient
from serving.standin import serve_in_process
from serving.standin.layout import find_model_base_path, version_dirs

REPO = Path(__file__).resolve().parents[1]
LEVELS = (1, 8, 32)
MAX_REQUESTS_PER_LEVEL = 20_000


def _tiny_model(work: Path) -> Path:
    """Version 1 of the tests' tiny world model (trained here, ~20 s)."""
    sys.path.append(str(REPO / "tests"))
    import tiny_world
    interactions = tiny_world.interactions()
    model = tiny_world.train(interactions, tiny_world.catalog(interactions))
    base = work / "source" / tiny_world.MODEL_NAME
    tiny_world.export(model, base, version=1)
    return base


def _item_ids(client: TowerGraphClient) -> list:
    found = {item.item_id for query in ("the", "a", "e", "o")
             for item in client.search(query, k=20)}  # 20: the tiny model's max k
    return sorted(found) or ["1"]


class Pusher(threading.Thread):
    """Copies new versions in during a level: good, then corrupt, then good again."""

    def __init__(self, base: Path, source: Path, seconds: float, stop: threading.Event):
        super().__init__(daemon=True)
        self.base, self.source, self.seconds, self.stop = base, source, seconds, stop
        self.pushed = []

    def _next(self) -> int:
        return max(version_dirs(self.base)) + 1

    def _push(self, corrupt: bool) -> None:
        version = self._next()
        staging = self.base.parent / f".staging-{version}"
        if corrupt:
            staging.mkdir()
            (staging / "saved_model.pb").write_bytes(b"\x08garbage, not a SavedModel")
        else:
            shutil.copytree(self.source, staging)
        staging.rename(self.base / str(version))  # appears whole, as the Pusher's do
        self.pushed.append((version, "corrupt" if corrupt else "good"))

    def run(self) -> None:
        for corrupt in (False, True, False):  # at 1/4, 1/2 and 3/4 of the level
            if self.stop.wait(self.seconds / 4):
                return
            self._push(corrupt)


def run_level(server, level: int, seconds: float, items: list, base: Path,
              source: Path) -> dict:
    stop = threading.Event()
    latencies, errors, lock = [], Counter(), threading.Lock()
    deadline = time.monotonic() + seconds
    budget = [MAX_REQUESTS_PER_LEVEL]

    def worker(index: int) -> None:
        address = server.rest_url if index % 2 == 0 else f"grpc://{server.grpc_target}"
        rng = np.random.default_rng(index)
        with TowerGraphClient.connect(address, timeout=5, retries=1) as client:
            while time.monotonic() < deadline:
                with lock:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                started = time.perf_counter()
                try:
                    client.similar_items([str(rng.choice(items))], k=10)
                    kind = None
                except Exception as error:  # noqa: BLE001 - counted by kind, the run goes on
                    kind = f"{client.protocol} {type(error).__name__}"
                elapsed = time.perf_counter() - started
                with lock:
                    if kind:
                        errors[kind] += 1
                    else:
                        latencies.append(elapsed)

    pusher = Pusher(base, source, seconds, stop)
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(level)]
    began = time.monotonic()
    pusher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    stop.set()
    pusher.join(5)
    wall = time.monotonic() - began
    ms = np.array(latencies) * 1e3 if latencies else np.array([np.nan])
    return {"level": level, "requests": len(latencies), "seconds": round(wall, 2),
            "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "errors": dict(errors),
            "pushed": pusher.pushed, "serving_after": server.repository.loaded_versions()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="serving dir or model base path (default: the "
                                            "tests' tiny model, trained first)")
    parser.add_argument("--quick", action="store_true", help="5 s per level (~30 s in all)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per level (max 60)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else min(max(args.seconds, 1.0), 60.0)

    with tempfile.TemporaryDirectory(prefix="towergraph-soak-") as scratch:
        work = Path(scratch)
        if args.model_dir:
            source_base = find_model_base_path(args.model_dir, "towergraph")
        else:
            source_base = _tiny_model(work)
        source = version_dirs(source_base)[max(version_dirs(source_base))]
        base = work / "serving" / "towergraph"
        base.mkdir(parents=True)
        shutil.copytree(source, base / "1")
        results = []
        with serve_in_process(base, poll_seconds=0.5) as server:
            with TowerGraphClient.connect(server.rest_url) as client:
                items = _item_ids(client)
            for level in LEVELS:
                results.append(run_level(server, level, seconds, items, base, source))

    print(f"stand-in on 127.0.0.1, similar_items k=10, {seconds:g} s per level (at most "
          f"{MAX_REQUESTS_PER_LEVEL} requests); REST threads even, gRPC odd")
    print(f"{'level':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  errors (by kind)")
    for row in results:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(row["errors"].items())) or "none"
        print(f"{row['level']:>5} {row['requests_per_s']:>8.1f} {row['p50_ms']:>8.2f} "
              f"{row['p99_ms']:>8.2f}  {errors}")
    for row in results:
        pushed = ", ".join(f"v{v} {kind}" for v, kind in row["pushed"])
        print(f"  level {row['level']}: pushed {pushed}; serving v{row['serving_after']} after")
    print("Reading: req/s is throughput of the whole server on this machine (2 cores shared "
          "with the clients); p99 includes the requests that waited while a new version loaded. "
          "A corrupt version must cause no errors: it fails to load and the last good version "
          "keeps serving; errors would show here by protocol and kind.")
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds_per_level": seconds,
                                               "levels": results}, indent=2))


if __name__ == "__main__":
    main()
