"""`towergraph data {prepare,synthetic,download}`: argparse wiring for pipeline.data.

add_data_commands() registers the commands on the top-level CLI's subparsers. Each handler
returns an exit code: 0 after printing a summary; 2 after printing `error: ...` to stderr for
bad input (DataError, invalid settings, an --output that is not ours to replace); 128 + the
signal's number after Ctrl-C or SIGTERM, once the temporary output has been removed.
The input limits are those of pipeline/data/readers.py, repeated in `data prepare --help`.
"""

import argparse
import inspect
import signal
import sys
from typing import Any, Callable, Dict

from pipeline.data.atomic import Terminated
from pipeline.data.download import download_goodbooks
from pipeline.data.errors import DataError
from pipeline.data.formats import FORMATS, PRESETS, csv_layout
from pipeline.data.ingest import prepare
from pipeline.data.readers import LIMITS
from pipeline.data.synthetic import generate_synthetic

# The CSV mapping options are csv_layout's arguments, so they are declared once, there.
LAYOUT_OPTIONS = list(inspect.signature(csv_layout).parameters.values())
OUTPUT_HELP = ("prepared data directory: created if missing; replaced only if it is empty or "
               "holds exactly what an earlier `data prepare|synthetic` wrote (its manifest "
               "and files), otherwise refused with exit code 2 and nothing deleted")


def add_data_commands(subparsers: Any) -> argparse.ArgumentParser:
    data = subparsers.add_parser("data", help="prepare input data for the pipeline",
                                 description="Turn a dataset into the prepared layout the "
                                             "pipeline reads (its data_dir).")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    command = commands.add_parser(
        "prepare", help="validate and convert a dataset directory",
        description="Validate every row of a dataset, then write the prepared layout. Any "
                    "problem is reported as `FILE, line N, column NAME: problem` with exit "
                    "code 2, before anything is written. Limits: " + LIMITS)
    command.add_argument("--format", required=True, choices=FORMATS)
    command.add_argument("--input", required=True, help="directory holding the dataset's files")
    command.add_argument("--output", required=True, help=OUTPUT_HELP)
    command.add_argument("--top-items", type=_count(0), default=0,
                         help="keep only the N most-rated items and their ratings (0: all)")
    mapping = command.add_argument_group(
        "file and column names", "override the format's names; presets: " +
        "; ".join(f"{name}: {_describe(preset)}" for name, preset in PRESETS.items()))
    for option in LAYOUT_OPTIONS:
        mapping.add_argument("--" + option.name.replace("_", "-"), dest=option.name,
                             metavar=option.name.rsplit("_", 1)[-1].upper(),
                             help=f"(csv default: {option.default!r})")
    command.set_defaults(func=_handler(_prepare))

    command = commands.add_parser("synthetic", help="generate a synthetic dataset with known "
                                                    "genres and popularity")
    command.add_argument("--output", required=True, help=OUTPUT_HELP)
    defaults = inspect.signature(generate_synthetic).parameters
    for name in ("users", "items", "genres", "ratings_per_user", "seed", "unrated_items"):
        command.add_argument("--" + name.replace("_", "-"),
                             type=_count(0 if name in ("seed", "unrated_items") else 1),
                             default=defaults[name].default,
                             help=f"default: {defaults[name].default}")
    command.set_defaults(func=_handler(_synthetic))

    command = commands.add_parser("download", help="download goodbooks-10k (books.csv, "
                                                   "ratings.csv)")
    command.add_argument("--output", required=True, help="directory for the downloaded files")
    command.add_argument("--sha256", help="expected sha256 of ratings.csv")
    command.set_defaults(func=_handler(_download))
    return data


def _prepare(args: argparse.Namespace) -> str:
    options = {option.name: getattr(args, option.name) for option in LAYOUT_OPTIONS}
    summary = prepare(args.format, args.input, args.output, top_items=args.top_items, **options)
    counts = summary["counts"]
    dropped = []
    if counts["duplicate_ratings_dropped"]:
        dropped.append(f"{counts['duplicate_ratings_dropped']:,} duplicate ratings "
                       f"(kept the last of each)")
    if counts["items_dropped_by_top_items"]:
        dropped.append(f"{counts['items_dropped_by_top_items']:,} items beyond the top "
                       f"{summary['top_items']:,} with their "
                       f"{counts['ratings_dropped_by_top_items']:,} ratings")
    if counts["unrated_items_dropped"]:
        dropped.append(f"{counts['unrated_items_dropped']:,} items without ratings")
    return (f"Prepared {_counts(summary)} from {summary['input']} ({summary['format']}) into "
            f"{summary['output']}; columns: {', '.join(summary['columns'])}. "
            f"Dropped: {'; '.join(dropped) if dropped else 'nothing'}.")


def _synthetic(args: argparse.Namespace) -> str:
    summary = generate_synthetic(args.output, users=args.users, items=args.items,
                                 genres=args.genres, ratings_per_user=args.ratings_per_user,
                                 seed=args.seed, unrated_items=args.unrated_items)
    return (f"Generated {_counts(summary)} in {args.genres} genres (seed {args.seed}) into "
            f"{summary['output']}; each item's genre is in items.csv.")


def _download(args: argparse.Namespace) -> str:
    result = download_goodbooks(args.output, ratings_sha256=args.sha256)
    pin = "" if args.sha256 else f" (pass --sha256 {result['ratings_sha256']} to pin it)"
    return (f"Downloaded goodbooks-10k into {result['output']}: books.csv (sha256 verified) and "
            f"ratings.csv with {result['ratings']:,} ratings, sha256 "
            f"{result['ratings_sha256']}{pin}. Next: data prepare --format goodbooks "
            f"--input {result['output']} --output DIR.")


def _counts(summary: Dict[str, Any]) -> str:
    counts = summary["counts"]
    unrated = counts.get("unrated_items", 0)
    return (f"{counts['ratings']:,} ratings by {counts['users']:,} users of "
            f"{counts['items']:,} items" + (f", and {unrated:,} items nobody rated yet (in "
                                            f"items.csv: the model places them by their "
                                            f"content)" if unrated else ""))


def _describe(preset: Dict[str, str]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in preset.items()) or "the defaults"


def _handler(action: Callable[[argparse.Namespace], str]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            print(action(args))
        except (DataError, ValueError) as error:  # bad input or settings, not a crash
            print(f"error: {error}", file=sys.stderr)
            return 2
        except (KeyboardInterrupt, Terminated) as stop:  # temporary output already removed
            print(f"interrupted: {args.output} is as it was before this run",
                  file=sys.stderr)
            return 128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
        return 0
    return run


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value
    return parse
