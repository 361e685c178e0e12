"""What bench/quality.py and bench/scale.py share: prepared data in memory, the vocabularies
Transform would compute, and the two-tower trained with the project's own trainer code.

Training here skips TFX (CsvExampleGen, Transform, Trainer) so that a benchmark or a sweep takes
seconds, but every model-side piece is the project's: `trainer.text.title_tokens` for the title
vocabulary, `trainer.catalog.build_catalog`, `trainer.model.compile_model`, `index_catalog`.
"""

import collections
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)

import numpy as np
import pandas as pd

from trainer.features import AUTHORS, GENRES, ITEM_ID, LIST_FEATURES, LIST_SEPARATOR, TITLE, \
    USER_ID
from trainer.preprocessing import MIN_TITLE_TOKEN_COUNT

REPO = Path(__file__).resolve().parents[1]
ML_100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
RESULTS = REPO / "bench" / "results"


def read_interactions(prepared_dir: str) -> pd.DataFrame:
    """The prepared interactions CSV as strings ('' for an empty list cell)."""
    path = os.path.join(prepared_dir, "interactions", "interactions.csv")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    return frame


def random_split(frame: pd.DataFrame, seed: int = 42,
                 eval_fraction: float = 0.2) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Random split of interactions: numpy default_rng(seed).permutation; the first
    (1 - eval_fraction) share of the permutation trains, the rest is held out."""
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(round(len(frame) * (1 - eval_fraction)))
    return (frame.iloc[np.sort(order[:cut])].reset_index(drop=True),
            frame.iloc[np.sort(order[cut:])].reset_index(drop=True))


def _by_frequency(counts: Dict[str, int], minimum: int = 1) -> List[str]:
    """Most frequent first (ties by value), as tft.vocabulary orders; keeps count >= minimum."""
    return [value for value, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            if count >= minimum]


def transform_vocabularies(train: pd.DataFrame):
    """(Vocabularies, item vocabulary) as trainer/preprocessing.py's Transform computes them
    over the training split: users; items by rating count; title tokens (trainer.text's
    tokeniser) counted over interactions, kept when seen MIN_TITLE_TOKEN_COUNT times;
    genres/authors values."""
    import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
    import tensorflow as tf
    from trainer.model import Vocabularies
    from trainer.text import title_tokens

    item_counts = train[ITEM_ID].value_counts()
    item_vocabulary = _by_frequency(item_counts.to_dict())
    firsts = train.drop_duplicates(ITEM_ID).set_index(ITEM_ID)
    per_item = item_counts.reindex(firsts.index).to_numpy()

    # Token counts over interactions = tokens of each item's title x the item's rating count.
    tokens = title_tokens(tf.constant(firsts[TITLE].tolist())).to_list()
    token_counts: Dict[str, int] = collections.Counter()
    for item_tokens, count in zip(tokens, per_item):
        for token in item_tokens:
            token_counts[token.decode("utf-8")] += int(count)

    lists = {}
    for name in LIST_FEATURES:
        if name in train.columns:
            counts: Dict[str, int] = collections.Counter()
            for joined, count in zip(firsts[name], per_item):
                for value in joined.split(LIST_SEPARATOR):
                    value = value.strip()
                    if value:
                        counts[value] += int(count)
            lists[name] = _by_frequency(counts)
    vocabularies = Vocabularies(
        users=_by_frequency(train[USER_ID].value_counts().to_dict()),
        title_tokens=_by_frequency(token_counts, MIN_TITLE_TOKEN_COUNT),
        genres=lists.get(GENRES), authors=lists.get(AUTHORS))
    return vocabularies, item_vocabulary


def features(frame: pd.DataFrame) -> Dict[str, np.ndarray]:
    """The columns the model reads, as numpy string arrays."""
    names = [USER_ID, ITEM_ID, TITLE] + [name for name in LIST_FEATURES if name in frame]
    return {name: frame[name].to_numpy(dtype=str) for name in names}


def make_catalog(train: pd.DataFrame, item_vocabulary: Sequence[str]):
    from trainer.catalog import build_catalog

    columns = features(train)
    columns.pop(USER_ID)
    step = 65_536  # as trainer/run.py scans the training split
    batches = ({name: values[start:start + step] for name, values in columns.items()}
               for start in range(0, len(train), step))
    return build_catalog(batches, item_vocabulary)


def train_dataset(train: pd.DataFrame, batch_size: int, seed: int,
                  shuffle_buffer: int = 100_000):
    """tf.data over the training split, shuffled like trainer/dataset.read_batches."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(features(train))
    return (data.shuffle(min(shuffle_buffer, len(train)), seed=seed,
                         reshuffle_each_iteration=True)
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))


def train_two_tower(train: pd.DataFrame, config, epochs: Optional[int] = None,
                    verbose: int = 0):
    """Vocabularies -> catalog -> compile_model -> fit -> index_catalog, timed.

    Returns (model, vocabularies, catalog, seconds: {"prepare", "fit"}).
    """
    from trainer.model import compile_model

    started = time.perf_counter()
    vocabularies, item_vocabulary = transform_vocabularies(train)
    catalog = make_catalog(train, item_vocabulary)
    model = compile_model(vocabularies, catalog, config)
    dataset = train_dataset(train, config.batch_size, config.seed)
    prepared = time.perf_counter()
    model.fit(dataset, epochs=epochs or config.epochs, verbose=verbose)
    model.index_catalog()
    fitted = time.perf_counter()
    return model, vocabularies, catalog, {"prepare": prepared - started,
                                          "fit": fitted - prepared}


def determinism() -> None:
    """Same numbers for the same seed: seeded ops and deterministic kernels."""
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()
