"""Training the two-tower from Transform's output: the functions the Trainer's `run_fn` calls.

They are public so that anything else that trains the model (a benchmark, a sweep, a Vertex
custom job) trains exactly what the pipeline trains, from the same inputs:

    transform_output = tft.TFTransformOutput(transform_graph_uri)
    model = train(transform_output, train_files, config)     # vocabularies, catalogue, fit
    export_serving_model(model, export_dir)                   # trainer/export.py

Everything the model needs arrives through the pipeline's channels: Transform's vocabularies
(transform_graph), the transformed examples, from which the candidate catalogue is built, and
the item catalogue's examples (items nobody rated: cold items; pipeline/trainer_component.py).
"""

import logging
from typing import Iterable, List, Optional, Sequence, Union

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
import tensorflow_transform as tft

from trainer import distribute
from trainer.catalog import Catalog, Histories, build_catalog, build_histories
from trainer.config import ModelConfig
from trainer.dataset import (as_numpy, in_memory, keep_items, read_batches, read_item_catalog,
                             shuffled_batches)
from trainer.features import (AUTHORS, GENRES, ITEM_ID, LIST_FEATURES, TITLE, USER_ID,
                              VOCABULARIES)
from trainer.model import MEAN_LOSS, TwoTowerModel, Vocabularies, compile_model
from trainer.warm_start import apply as apply_warm_start

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
                           catalog.warm_ids)


def load_catalog(transform_output: tft.TFTransformOutput, files: Files,
                 config: Optional[ModelConfig] = None,
                 item_files: Optional[Files] = None) -> Catalog:
    """Every vocabulary item with its content and interaction count, from the examples, then
    (config.cold_items, the default) up to config.max_cold_items cold items: the most-rated
    items of the examples outside the vocabulary, then the items of the item catalogue's
    examples (`item_files`, None: none) that no example names (trainer.catalog.build_catalog)."""
    config = config or ModelConfig()
    spec = transform_output.transformed_feature_spec()
    max_cold_items = config.max_cold_items if config.cold_items else 0
    return build_catalog(lambda: as_numpy(read_batches(files, spec, SCAN_BATCH)),
                         item_vocabulary(transform_output), max_cold_items=max_cold_items,
                         catalog_items=read_item_catalog(item_files,
                                                         (ITEM_ID, TITLE, *LIST_FEATURES))
                         if item_files and max_cold_items else None)


def training_data(transform_output: tft.TFTransformOutput, files: Files, catalog: Catalog,
                  config: ModelConfig, shuffle: bool = True,
                  interactions: Optional[int] = None) -> tf.data.Dataset:
    """Batches of (user id, item id) interactions with warm catalogue items, shuffled with the
    config's seed. Only the two ids are parsed: an item's content is a per-item fact the
    model gathers by catalogue row (CandidateTower.from_rows). Shuffled training sets of up
    to config.in_memory_interactions are read once into memory and reshuffled whole every
    epoch (trainer.dataset.shuffled_batches); others are read from the files every epoch.

    interactions: how many of the files' interactions name warm catalogue items (the
    catalogue's own warm count when it was built from the same files); counted with one scan
    when not given. Cold items' interactions are left out, as their items have no id row.
    The dataset declares its number of batches (Keras needs it to run several steps per call)
    and fails if the files hold another number.
    """
    spec = transform_output.transformed_feature_spec()
    spec = {name: spec[name] for name in (USER_ID, ITEM_ID)}
    if interactions is None:
        interactions = sum(len(batch[ITEM_ID]) for batch in as_numpy(keep_items(
            read_batches(files, {ITEM_ID: spec[ITEM_ID]}, SCAN_BATCH), catalog.warm_ids)))
    batches = -(-interactions // config.batch_size)
    if shuffle and 0 < interactions <= config.in_memory_interactions:
        # Read and parsed once: an epoch from the files spent about a quarter of its CPU in
        # tf.data (gunzip, parse, shuffle buffer), on the cores the training step needs.
        data = shuffled_batches(in_memory(keep_items(read_batches(files, spec, SCAN_BATCH),
                                                     catalog.warm_ids)),
                                config.batch_size, config.seed)
    else:
        # Dropping items outside the catalogue shortens batches; rebatching keeps them all at
        # batch_size (but the last), so the XLA-compiled loss compiles once, not per length.
        data = keep_items(read_batches(files, spec, config.batch_size, shuffle=shuffle,
                                       seed=config.seed), catalog.warm_ids
                          ).rebatch(config.batch_size)
    return (data.apply(tf.data.experimental.assert_cardinality(batches))
            .prefetch(tf.data.AUTOTUNE))


def per_replica(strategy: tf.distribute.Strategy, batches: tf.data.Dataset):
    """Global batches -> each replica's share of every batch, under a multi-replica strategy.

    Every worker reads the same stream of global batches (the same files, shuffled with the
    same seed) and keeps its replicas' strided slices of each one: tf.data's DATA sharding,
    done by hand because auto-sharding by FILE fails with fewer files than workers, and
    because this way every worker runs the same number of steps (the collectives of a step
    need every worker) and the replicas together train on exactly one process's global
    batches. The price: every worker reads and parses the ids of every interaction.
    Repeated: Keras keeps a distributed dataset's iterator across epochs, so fit() and
    evaluate() need steps (the global batch count).
    """
    batches = batches.with_options(_deterministic())

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        replicas = context.num_replicas_in_sync
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def slices(batch):
            # A worker's local replicas take consecutive elements: one slice each per step.
            return tf.data.Dataset.range(first, first + local).map(
                lambda replica: {name: values[replica::replicas]
                                 for name, values in batch.items()})

        # Every replica gets at least one interaction per step (an empty all-gather crashes
        # TensorFlow's CPU ring collective): a last batch smaller than the replicas is left
        # out, and the next epoch's first batch takes its step.
        big_enough = batches.filter(lambda batch: tf.shape(batch[ITEM_ID])[0] >= replicas)
        return big_enough.flat_map(slices).repeat().prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(dataset_fn)


def _deterministic() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


def _steps(data: tf.data.Dataset) -> int:
    return int(tf.data.experimental.cardinality(data).numpy())


def fit(model: TwoTowerModel, data: tf.data.Dataset, epochs: int,
        callbacks: Iterable[tf.keras.callbacks.Callback] = (), verbose: int = 0) -> None:
    """Trains for `epochs` passes, then indexes the catalogue's final item vectors. Under a
    multi-replica strategy (the one the model was built under) each replica trains on its
    share of every batch of `data` (per_replica)."""
    strategy = model.distribute_strategy
    steps = None
    if strategy.num_replicas_in_sync > 1:
        data, steps = per_replica(strategy, data), _steps(data)
    model.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=verbose,
              callbacks=list(callbacks))
    with strategy.scope():
        model.index_catalog()


def train(transform_output: tft.TFTransformOutput, files: Files, config: ModelConfig,
          epochs: Optional[int] = None,
          callbacks: Iterable[tf.keras.callbacks.Callback] = (),
          verbose: int = 0, warm_start_from: Optional[str] = None,
          item_files: Optional[Files] = None) -> TwoTowerModel:
    """Vocabularies -> catalogue -> compiled model -> [warm start] -> fit, on the given
    transformed examples.

    Under the strategy the environment chooses (trainer/distribute.py): one process as ever,
    or, when TF_CONFIG names several workers, every worker calls this with the same arguments
    and they train one model together: config.batch_size is the global batch, split across
    the replicas, whose in-batch negatives are the whole global batch's (as in one process).

    Args:
      transform_output: Transform's output (its vocabularies and feature spec).
      files: file pattern(s) of transformed examples to train on; the catalogue's counts (the
        popularity and log-Q sampling probabilities) are taken from the same examples.
      config: the model settings.
      epochs: overrides config.epochs (the served model's refit_epochs; a benchmark timing
        one epoch).
      warm_start_from: an earlier model's export (a SavedModel folder) to initialise from
        (trainer/warm_start.py); None, or one that cannot be used: from scratch.
      item_files: file pattern(s) of the item catalogue's examples (run_fn's
        fn_args.item_catalog_files): its items that no training example names join the
        catalogue as cold items; None: only the examples' items.
    Returns:
      The trained model, its catalogue indexed for top-k metrics; its `warm_start_report`
      (trainer.warm_start.Report) says what was carried over from warm_start_from.
    """
    strategy = distribute.strategy()
    vocabularies = load_vocabularies(transform_output)
    catalog = load_catalog(transform_output, files, config, item_files)
    logging.info("catalogue: %d items (%d cold, %d of them unrated), %d users", len(catalog),
                 len(catalog) - catalog.warm_items, int((catalog.counts == 0).sum()),
                 len(vocabularies.users))
    histories = (load_histories(transform_output, files, catalog, vocabularies.users)
                 if config.user_history else None)
    with strategy.scope():
        model = compile_model(vocabularies, catalog, config, histories)
        model.warm_start_report = apply_warm_start(model, warm_start_from)
    fit(model, training_data(transform_output, files, catalog, config,
                             interactions=int(catalog.warm_counts.sum())),
        epochs=config.epochs if epochs is None else epochs, callbacks=callbacks,
        verbose=verbose)
    return model


def evaluate(model: TwoTowerModel, transform_output: tft.TFTransformOutput, files: Files,
             catalog: Optional[Catalog] = None) -> dict:
    """Keras' full-catalogue top-k metrics of a trained model on held-out examples."""
    data = training_data(transform_output, files, catalog or model.catalog, model.config,
                         shuffle=False)
    strategy = model.distribute_strategy
    if strategy.num_replicas_in_sync <= 1:
        return model.evaluate(data, return_dict=True, verbose=0)
    # Every worker evaluates its share. Keras' logs add up the replicas' own ratios (tf_keras'
    # "auto" reduction is a sum): two replicas' top-k accuracies of 0.3 each came back as 0.6
    # (tests/test_multiworker.py). Read across replicas, a metric sums its totals and counts:
    # the ratio over every held-out interaction, as in one process.
    logs = model.evaluate(per_replica(strategy, data), steps=_steps(data), return_dict=True,
                          verbose=0)
    for metric in model.metrics:
        if metric.name in logs and metric.name != MEAN_LOSS:
            logs[metric.name] = float(metric.result())
    return logs
