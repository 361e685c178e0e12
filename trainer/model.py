"""The TFRS two-tower retrieval model: a user tower and a hybrid content + id item tower.

Both towers end in unit-length vectors, so a query-item score is a cosine and the same
embeddings serve "users like this" and "items like this one". Importable without TFX.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer.catalog import Catalog
from trainer.config import ModelConfig
from trainer.features import AUTHORS, GENRES, ITEM_ID, TITLE, USER_ID
from trainer.text import list_values, title_tokens


@dataclasses.dataclass(frozen=True)
class Vocabularies:
    """Transform's vocabularies; genres/authors are None when the data has no such column."""

    users: List[str]
    title_tokens: List[str]
    genres: Optional[List[str]] = None
    authors: Optional[List[str]] = None


class _Lookup(tf.keras.layers.Layer):
    """Strings -> embedding rows; index 0 is every string outside the vocabulary."""

    def __init__(self, vocabulary: Sequence[str], dim: int, name: str):
        super().__init__(name=name)
        self.index = tf.keras.layers.StringLookup(vocabulary=list(vocabulary), mask_token=None,
                                                  num_oov_indices=1)
        self.embedding = tf.keras.layers.Embedding(len(vocabulary) + 1, dim)

    def call(self, strings):
        return self.embedding(self.index(strings))


class _BagOfValues(tf.keras.layers.Layer):
    """Mean embedding of the known values in a multi-valued text feature (title words, genres).

    Values outside the vocabulary are dropped, and an item with none gets a zero vector.
    """

    def __init__(self, vocabulary: Sequence[str], dim: int, split, name: str):
        super().__init__(name=name)
        self.split = split
        self.index = tf.keras.layers.StringLookup(vocabulary=list(vocabulary), mask_token=None,
                                                  num_oov_indices=1)
        self.embedding = tf.keras.layers.Embedding(len(vocabulary) + 1, dim)

    def call(self, texts):
        ids = tf.ragged.map_flat_values(self.index, self.split(texts))
        ids = tf.ragged.boolean_mask(ids, ids > 0)
        vectors = tf.ragged.map_flat_values(self.embedding, ids)
        count = tf.cast(tf.maximum(ids.row_lengths(), 1), vectors.dtype)
        return tf.reduce_sum(vectors, axis=1) / count[:, None]


def _projection(hidden: Sequence[int], dim: int) -> List[tf.keras.layers.Layer]:
    layers = [tf.keras.layers.Dense(units, activation="relu") for units in hidden]
    return layers + [tf.keras.layers.Dense(dim)] if layers else []


def _unit(vectors):
    return tf.math.l2_normalize(vectors, axis=-1)


class QueryTower(tf.keras.Model):
    """User id -> unit vector. Unknown users all share one (meaningless) vector: check known()."""

    def __init__(self, users: Sequence[str], config: ModelConfig):
        super().__init__(name="query_tower")
        self.user = _Lookup(users, config.embedding_dim, name="user")
        self.projection = _projection(config.query_layers, config.embedding_dim)

    def call(self, user_ids):
        vectors = self.user(user_ids)
        for layer in self.projection:
            vectors = layer(vectors)
        return _unit(vectors)

    def known(self, user_ids):
        return self.user.index(user_ids) > 0


class CandidateTower(tf.keras.Model):
    """Item id + title words + genres/authors -> unit vector (collaborative + content)."""

    def __init__(self, item_ids: Sequence[str], vocabularies: Vocabularies,
                 config: ModelConfig):
        super().__init__(name="candidate_tower")
        dim = config.embedding_dim
        self.item = _Lookup(item_ids, dim, name="item")
        self.content = {TITLE: _BagOfValues(vocabularies.title_tokens, dim, title_tokens,
                                            name="title")}
        for name, vocabulary in ((GENRES, vocabularies.genres),
                                 (AUTHORS, vocabularies.authors)):
            if vocabulary is not None:
                self.content[name] = _BagOfValues(vocabulary, dim, list_values, name=name)
        self.projection = _projection(config.candidate_layers, dim)

    def call(self, features: Dict[str, tf.Tensor]):
        parts = [self.item(features[ITEM_ID])]
        parts += [bag(features[name]) for name, bag in self.content.items()]
        vectors = tf.concat(parts, axis=-1)
        for layer in self.projection:
            vectors = layer(vectors)
        return _unit(vectors)


class TwoTowerModel(tfrs.Model):
    """In-batch softmax retrieval over (user, item) interactions."""

    def __init__(self, vocabularies: Vocabularies, catalog: Catalog, config: ModelConfig):
        super().__init__()
        self.config = config
        self.catalog = catalog
        self.query_tower = QueryTower(vocabularies.users, config)
        self.candidate_tower = CandidateTower(catalog.item_ids, vocabularies, config)
        self.sampling_probability = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(catalog.item_ids),
                tf.constant(catalog.sampling_probability, dtype=tf.float32)),
            default_value=0.0)
        # Full-catalogue top-K metrics over a brute-force index of the item vectors: indexed
        # once training is done (index_catalog), as the vectors change while training.
        ks = tuple(k for k in (10, 50, 100) if k <= len(catalog)) or (len(catalog),)
        self.top_k_index = tfrs.layers.factorized_top_k.BruteForce(k=max(ks))
        self.task = tfrs.tasks.Retrieval(
            metrics=tfrs.metrics.FactorizedTopK(candidates=self.top_k_index, ks=ks),
            temperature=config.temperature,
            remove_accidental_hits=True,
        )

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False):
        queries = self.query_tower(features[USER_ID])
        candidates = self.candidate_tower(features)
        probability = None
        if self.config.logq_correction:
            probability = self.sampling_probability.lookup(features[ITEM_ID])
        # The full-catalogue top-K metrics are costly: compute them on evaluation only.
        return self.task(queries, candidates, candidate_sampling_probability=probability,
                         candidate_ids=features[ITEM_ID], compute_metrics=not training)

    def index_catalog(self) -> None:
        """Indexes the current item vectors for the top-K metrics; call before evaluate()."""
        self.top_k_index.index(self.item_embeddings(), tf.constant(self.catalog.item_ids))

    def item_embeddings(self, batch_size: int = 4096) -> tf.Tensor:
        """[len(catalog), embedding_dim] unit vectors, in catalog order."""
        batches = tf.data.Dataset.from_tensor_slices(self.catalog.content()).batch(batch_size)
        return tf.concat([self.candidate_tower(batch) for batch in batches], axis=0)


def compile_model(vocabularies: Vocabularies, catalog: Catalog,
                  config: ModelConfig) -> TwoTowerModel:
    tf.keras.utils.set_random_seed(config.seed)
    model = TwoTowerModel(vocabularies, catalog, config)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=config.learning_rate))
    return model
