"""Wall time of the local TFX pipeline, per component, under each Beam DirectRunner mode.

    .venv/bin/python bench/pipeline_run.py [--data work/data] [--modes multi_processing,auto]

Without --data it prepares MovieLens-100K from ../shared/data/ml-100k. Each mode runs in a fresh
output folder (no cache), one after the other in the same process, so the two are compared on
the same machine and data; times come from ML Metadata's execution records.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import load_config  # noqa: E402
from pipeline.data import prepare  # noqa: E402
from pipeline.local_runner import run  # noqa: E402
from pipeline.results import component_seconds, latest_run_summary  # noqa: E402

ML_100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="prepared data (default: ML-100K, prepared here)")
    parser.add_argument("--modes", default="multi_processing,auto",
                        help="beam_mode values to run, in order (auto: the default's choice)")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="towergraph-bench-"))
    data = args.data
    if not data:
        data = str(scratch / "data")
        prepare("movielens", str(ML_100K), data)

    results = {}
    for mode in args.modes.split(","):
        config = load_config(None, data_dir=data, output_dir=str(scratch / mode), beam_mode=mode)
        started = time.perf_counter()
        run(config)
        wall = time.perf_counter() - started
        summary = latest_run_summary(config)
        results[mode] = {"wall_seconds": wall, "components": component_seconds(config),
                         "model": summary.metrics["model"],
                         "popularity": summary.metrics["popularity"]}

    modes = list(results)
    components = list(results[modes[0]]["components"])
    print(f"data: {data}")
    print(f"{'component':<18}" + "".join(f"{mode:>18}" for mode in modes))
    for name in components:
        print(f"{name:<18}" + "".join(f"{results[m]['components'][name]:>17.1f}s" for m in modes))
    print(f"{'whole run (wall)':<18}" + "".join(f"{results[m]['wall_seconds']:>17.1f}s"
                                               for m in modes))
    if len(modes) == 2:
        ratio = results[modes[1]]["wall_seconds"] / results[modes[0]]["wall_seconds"]
        print(f"ratio {modes[1]} / {modes[0]}: {ratio:.2f}")
    for mode in modes:
        print(f"{mode}: model {results[mode]['model']}, popularity {results[mode]['popularity']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
