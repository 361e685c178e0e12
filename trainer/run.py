"""TFX Trainer entry point: `run_fn`, referenced by the pipeline as "trainer.run.run_fn".

Everything the model needs arrives through the pipeline's channels: Transform's vocabularies
(transform_graph) and the transformed examples, from which the candidate catalogue is built.
Only hyperparameters travel in custom_config.
"""

import logging
from typing import List

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
import tensorflow_transform as tft

from trainer.catalog import build_catalog
from trainer.dataset import as_numpy, keep_items, read_batches
from towergraph.constants import DEFAULT_MAX_K
from trainer.config import ModelConfig, from_mapping
from trainer.export import export_serving_model
from trainer.features import AUTHORS, GENRES, ITEM_ID, TITLE, USER_ID, VOCABULARIES
from trainer.model import Vocabularies, compile_model

# Rows per batch when scanning the training split for the catalogue.
_SCAN_BATCH = 65_536


def _vocabulary(transform_output: tft.TFTransformOutput, feature: str) -> List[str]:
    return [token.decode("utf-8") if isinstance(token, bytes) else token
            for token in transform_output.vocabulary_by_name(VOCABULARIES[feature])]


def load_vocabularies(transform_output: tft.TFTransformOutput) -> Vocabularies:
    present = transform_output.transformed_feature_spec()
    return Vocabularies(
        users=_vocabulary(transform_output, USER_ID),
        title_tokens=_vocabulary(transform_output, TITLE),
        genres=_vocabulary(transform_output, GENRES) if GENRES in present else None,
        authors=_vocabulary(transform_output, AUTHORS) if AUTHORS in present else None,
    )


def run_fn(fn_args) -> None:
    """Trains the two-tower model and exports the serving SavedModel."""
    config = from_mapping(ModelConfig, fn_args.custom_config.get("model", {}),
                          "Trainer custom_config[\"model\"]")
    max_k = fn_args.custom_config.get("max_k", DEFAULT_MAX_K)
    transform_output = tft.TFTransformOutput(fn_args.transform_output)
    feature_spec = transform_output.transformed_feature_spec()

    vocabularies = load_vocabularies(transform_output)
    catalog = build_catalog(
        as_numpy(read_batches(fn_args.train_files, feature_spec, _SCAN_BATCH)),
        _vocabulary(transform_output, ITEM_ID))
    logging.info("catalogue: %d items, %d users", len(catalog), len(vocabularies.users))

    model = compile_model(vocabularies, catalog, config)
    train = keep_items(read_batches(fn_args.train_files, feature_spec, config.batch_size,
                                    shuffle=True, seed=config.seed), catalog.item_ids)
    held_out = keep_items(read_batches(fn_args.eval_files, feature_spec, config.batch_size),
                          catalog.item_ids)
    tensorboard = tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)
    model.fit(train, epochs=config.epochs, verbose=2, callbacks=[tensorboard])
    model.index_catalog()
    metrics = model.evaluate(held_out, return_dict=True, verbose=0, callbacks=[tensorboard])
    logging.info("held-out metrics: %s", metrics)
    export_serving_model(model, fn_args.serving_model_dir, max_k=max_k)
