"""Training the two-tower from Transform's output: the functions the Trainer's `run_fn` calls.

They are public so that anything else that trains the model (a benchmark, a sweep, a Vertex
custom job) trains exactly what the pipeline trains, from the same inputs:

    transform_output = tft.TFTransformOutput(transform_graph_uri)
    model = train(transform_output, train_files, config)     # vocabularies, catalogue, fit
    export_serving_model(model, export_dir)                   # trainer/export.py

Everything the model needs arrives through the pipeline's channels: Transform's vocabularies
(transform_graph) and the transformed examples, from which the candidate catalogue is built.
"""

import logging
from typing import Iterable, List, Optional, Sequence, Union

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
import tensorflow_transform as tft

from trainer.catalog import Catalog, Histories, build_catalog, build_histories
from trainer.config import ModelConfig
from trainer.dataset import as_numpy, keep_items, read_batches
from trainer.features import AUTHORS, GENRES, ITEM_ID, TITLE, USER_ID, VOCABULARIES
from trainer.model import TwoTowerModel, Vocabularies, compile_model

# Rows per batch when scanning the training examples for the catalogue.
SCAN_BATCH = 65_536

Files = Union[str, Sequence[str]]


def _vocabulary(transform_output: tft.TFTransformOutput, feature: str) -> List[str]:
    return [token.decode("utf-8") if isinstance(token, bytes) else token
            for token in transform_output.vocabulary_by_name(VOCABULARIES[feature])]


def item_vocabulary(transform_output: tft.TFTransformOutput) -> List[str]:
    """Transform's item vocabulary: most-rated first, cut to `top_items` if that was set."""
    return _vocabulary(transform_output, ITEM_ID)


def load_vocabularies(transform_output: tft.TFTransformOutput) -> Vocabularies:
    """The user, title-word and genre/author vocabularies Transform computed."""
    present = transform_output.transformed_feature_spec()
    return Vocabularies(
        users=_vocabulary(transform_output, USER_ID),
        title_tokens=_vocabulary(transform_output, TITLE),
        genres=_vocabulary(transform_output, GENRES) if GENRES in present else None,
        authors=_vocabulary(transform_output, AUTHORS) if AUTHORS in present else None,
    )


def load_histories(transform_output: tft.TFTransformOutput, files: Files, catalog: Catalog,
                   users: Sequence[str]) -> Histories:
    """Each user's catalogue items in the examples, for the user tower's history pooling."""
    spec = transform_output.transformed_feature_spec()
    spec = {name: spec[name] for name in (USER_ID, ITEM_ID)}
    return build_histories(as_numpy(read_batches(files, spec, SCAN_BATCH)), users,
                           catalog.item_ids)


def load_catalog(transform_output: tft.TFTransformOutput, files: Files) -> Catalog:
    """Every vocabulary item with its content and interaction count, from the examples."""
    spec = transform_output.transformed_feature_spec()
    return build_catalog(as_numpy(read_batches(files, spec, SCAN_BATCH)),
                         item_vocabulary(transform_output))


def training_data(transform_output: tft.TFTransformOutput, files: Files, catalog: Catalog,
                  config: ModelConfig, shuffle: bool = True,
                  interactions: Optional[int] = None) -> tf.data.Dataset:
    """Batches of (user id, item id) interactions with catalogue items, shuffled with the
    config's seed. Only the two ids are parsed: an item's content is a per-item fact the
    model gathers by catalogue row (CandidateTower.from_rows).

    interactions: how many of the files' interactions name catalogue items (the catalogue's
    own count when it was built from the same files); counted with one scan when not given.
    The dataset declares its number of batches (Keras needs it to run several steps per call)
    and fails if the files hold another number.
    """
    spec = transform_output.transformed_feature_spec()
    spec = {name: spec[name] for name in (USER_ID, ITEM_ID)}
    if interactions is None:
        interactions = sum(len(batch[ITEM_ID]) for batch in as_numpy(keep_items(
            read_batches(files, {ITEM_ID: spec[ITEM_ID]}, SCAN_BATCH), catalog.item_ids)))
    kept = keep_items(read_batches(files, spec, config.batch_size, shuffle=shuffle,
                                   seed=config.seed), catalog.item_ids)
    # Dropping items outside the catalogue shortens batches; rebatching keeps them all at
    # batch_size (but the last), so the XLA-compiled loss compiles once, not per batch length.
    batches = -(-interactions // config.batch_size)
    return (kept.rebatch(config.batch_size)
            .apply(tf.data.experimental.assert_cardinality(batches))
            .prefetch(tf.data.AUTOTUNE))


def fit(model: TwoTowerModel, data: tf.data.Dataset, epochs: int,
        callbacks: Iterable[tf.keras.callbacks.Callback] = (), verbose: int = 0) -> None:
    """Trains for `epochs` passes, then indexes the catalogue's final item vectors."""
    model.fit(data, epochs=epochs, verbose=verbose, callbacks=list(callbacks))
    model.index_catalog()


def train(transform_output: tft.TFTransformOutput, files: Files, config: ModelConfig,
          epochs: Optional[int] = None,
          callbacks: Iterable[tf.keras.callbacks.Callback] = (),
          verbose: int = 0) -> TwoTowerModel:
    """Vocabularies -> catalogue -> compiled model -> fit, on the given transformed examples.

    Args:
      transform_output: Transform's output (its vocabularies and feature spec).
      files: file pattern(s) of transformed examples to train on; the catalogue's counts (the
        popularity and log-Q sampling probabilities) are taken from the same examples.
      config: the model settings.
      epochs: overrides config.epochs (a benchmark timing one epoch).
    Returns:
      The trained model, its catalogue indexed for top-k metrics.
    """
    vocabularies = load_vocabularies(transform_output)
    catalog = load_catalog(transform_output, files)
    logging.info("catalogue: %d items, %d users", len(catalog), len(vocabularies.users))
    histories = (load_histories(transform_output, files, catalog, vocabularies.users)
                 if config.user_history else None)
    model = compile_model(vocabularies, catalog, config, histories)
    fit(model, training_data(transform_output, files, catalog, config,
                             interactions=int(catalog.counts.sum())),
        epochs=config.epochs if epochs is None else epochs, callbacks=callbacks,
        verbose=verbose)
    return model


def evaluate(model: TwoTowerModel, transform_output: tft.TFTransformOutput, files: Files,
             catalog: Optional[Catalog] = None) -> dict:
    """Keras' full-catalogue top-k metrics of a trained model on held-out examples."""
    data = training_data(transform_output, files, catalog or model.catalog, model.config,
                         shuffle=False)
    return model.evaluate(data, return_dict=True, verbose=0)
