"""The TFRS two-tower retrieval model: a user tower and a hybrid content + id item tower.

Both towers end in unit-length vectors, so the same embeddings serve "users like this" and
"items like this one" (cosines). A user-item score adds a learned per-item bias (config.item_bias):
a unit vector cannot say how popular an item is, and without the bias the towers' directions
had to carry popularity too. Importable without TFX.
"""

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer.catalog import Catalog, Histories
from trainer.config import ModelConfig
from trainer.features import AUTHORS, GENRES, ITEM_ID, TITLE, USER_ID
from trainer.hardware import loss_precision
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

    def ids(self, texts) -> tf.RaggedTensor:
        """[N] texts -> [N, None] vocabulary indices of their known values (per-item facts:
        computed once per catalogue item for training, see CandidateTower.index_catalog)."""
        ids = tf.ragged.map_flat_values(self.index, self.split(texts))
        return tf.ragged.boolean_mask(ids, ids > 0)

    def pool(self, ids: tf.RaggedTensor):
        """Mean embedding of each row's indices; a row without any is a zero vector."""
        vectors = tf.ragged.map_flat_values(self.embedding, ids)
        count = tf.cast(tf.maximum(ids.row_lengths(), 1), vectors.dtype)
        return tf.reduce_sum(vectors, axis=1) / count[:, None]

    def call(self, texts):
        return self.pool(self.ids(texts))


def _projection(hidden: Sequence[int], dim: int) -> List[tf.keras.layers.Layer]:
    layers = [tf.keras.layers.Dense(units, activation="relu") for units in hidden]
    return layers + [tf.keras.layers.Dense(dim)] if layers else []


def _unit(vectors):
    return tf.math.l2_normalize(vectors, axis=-1)


class QueryTower(tf.keras.Model):
    """User id (+ the mean embedding of the user's training items) -> unit vector.

    Unknown users all share one (meaningless) vector: check known(). With histories, the user
    is also represented by what they rated, as item-based models (item-kNN, EASE) do, through
    the candidate tower's own item-id embeddings (so "users who rated X" and "items like X"
    shape the same vectors); while training, the item being predicted is left out of its own
    user's history, or the tower would learn to find an item in its own input.
    """

    def __init__(self, users: Sequence[str], config: ModelConfig,
                 histories: Optional[Histories] = None,
                 item_embedding: Optional[tf.keras.layers.Embedding] = None):
        super().__init__(name="query_tower")
        dim = config.embedding_dim
        self.user = _Lookup(users, dim, name="user")
        self.item_embedding = None
        if histories is not None:
            self.history_splits = tf.Variable(histories.row_splits, trainable=False,
                                              name="history_splits")
            self.history_values = tf.Variable(histories.values, trainable=False,
                                              name="history_values")
            self.item_embedding = item_embedding
        self.projection = _projection(config.query_layers, dim)

    def _history_items(self, rows):
        # Catalogue row r is row r + 1 of the item-id embedding (0: unknown items).
        return self.item_embedding(rows + 1)

    def _history_mean(self, index, leave_out=None):
        """Mean history-item embedding per user index; `leave_out` rows are excluded."""
        starts = tf.gather(self.history_splits, index)
        lengths = tf.gather(self.history_splits, index + 1) - starts
        positions = tf.ragged.range(starts, starts + lengths)
        segments = positions.value_rowids()
        rows = tf.gather(self.history_values, positions.flat_values)
        batch = tf.shape(index)[0]
        sums = tf.math.unsorted_segment_sum(self._history_items(rows), segments, batch)
        counts = tf.cast(lengths, sums.dtype)
        if leave_out is not None:
            hit = tf.math.unsorted_segment_max(
                tf.cast(tf.equal(rows, tf.gather(leave_out, segments)), sums.dtype),
                segments, batch)
            hit = tf.maximum(hit, 0.0)  # segments of empty histories come back as -inf
            sums -= self._history_items(tf.maximum(leave_out, 0)) * hit[:, None]
            counts -= hit
        return sums / tf.maximum(counts, 1.0)[:, None]

    def call(self, user_ids, leave_out=None):
        """leave_out: [B] catalogue rows to exclude from each user's history (training)."""
        index = self.user.index(user_ids)
        vectors = self.user.embedding(index)
        if self.item_embedding is not None:
            vectors += self._history_mean(index, leave_out)
        for layer in self.projection:
            vectors = layer(vectors)
        return _unit(vectors)

    def known(self, user_ids):
        return self.user.index(user_ids) > 0


class CandidateTower(tf.keras.Model):
    """Item id + title words + genres/authors -> unit vector (collaborative + content).

    Two entry points computing the same vectors: call() from an item's strings (serving: any
    item, known or not), and from_rows() from catalogue rows (training), which gathers the
    title-word and genre/author indices index_catalog() computed once per item instead of
    tokenising and looking up the same strings for every interaction.
    """

    def __init__(self, item_ids: Sequence[str], vocabularies: Vocabularies,
                 config: ModelConfig):
        """item_ids: the id vocabulary (the catalogue's warm items, whose rows come first);
        catalogue rows from len(item_ids) on are cold items, embedded with the
        out-of-vocabulary id row (content alone)."""
        super().__init__(name="candidate_tower")
        dim = config.embedding_dim
        self.warm_items = len(item_ids)
        self.item = _Lookup(item_ids, dim, name="item")
        self.content = {TITLE: _BagOfValues(vocabularies.title_tokens, dim, title_tokens,
                                            name="title")}
        for name, vocabulary in ((GENRES, vocabularies.genres),
                                 (AUTHORS, vocabularies.authors)):
            if vocabulary is not None:
                self.content[name] = _BagOfValues(vocabulary, dim, list_values, name=name)
        self.projection = _projection(config.candidate_layers, dim)
        # A learned score offset per warm item (row 0: cold items and dropped ids), or None.
        self.bias = (tf.keras.layers.Embedding(len(item_ids) + 1, 1,
                                               embeddings_initializer="zeros", name="item_bias")
                     if config.item_bias else None)
        self._content_ids: Dict[str, Tuple[tf.Tensor, tf.Tensor]] = {}

    def _project(self, parts):
        """The id and content embeddings -> the item's unit vector: concatenated and through
        candidate_layers, or, with none, summed (each has embedding_dim values, so the vector
        has the user tower's size, as the user tower adds its history mean to its id's)."""
        if not self.projection:
            return _unit(tf.add_n(parts))
        vectors = tf.concat(parts, axis=-1)
        for layer in self.projection:
            vectors = layer(vectors)
        return _unit(vectors)

    def call(self, features: Dict[str, tf.Tensor]):
        parts = [self.item(features[ITEM_ID])]
        parts += [bag(features[name]) for name, bag in self.content.items()]
        return self._project(parts)

    def from_content(self, features: Dict[str, tf.Tensor]):
        """Items from their content alone ([N] title and genres/authors strings; a feature the
        tower has no bag for is ignored): the out-of-vocabulary id row, as cold items."""
        titles = features[TITLE]
        parts = [self.item.embedding(tf.zeros(tf.shape(titles), tf.int64))]
        parts += [bag(features[name]) for name, bag in self.content.items()]
        return self._project(parts)

    def index_catalog(self, content: Mapping[str, Sequence[str]]) -> None:
        """Computes each catalogue item's content indices once (row r = catalogue row r), as
        ragged (values, row_splits): memory grows with the text, not with its longest title."""
        self._content_ids = {}
        for name, bag in self.content.items():
            ids = bag.ids(tf.constant(list(content[name]), dtype=tf.string))
            self._content_ids[name] = (ids.flat_values, ids.row_splits)

    def _id_rows(self, rows, drop_ids=None):
        """Catalogue rows -> rows of the item-id tables (the id embedding, the bias): row + 1
        for warm rows (StringLookup's index), 0 (out of vocabulary) for cold rows and for
        `drop_ids` ([B] bool, id-dropout)."""
        ids = tf.where(rows < self.warm_items, rows + 1, tf.zeros_like(rows))
        if drop_ids is not None:
            ids = tf.where(drop_ids, tf.zeros_like(ids), ids)
        return ids

    def bias_of_rows(self, rows, drop_ids=None):
        """[B] learned score offsets of catalogue rows (cold rows and dropped ids: row 0)."""
        return self.bias(self._id_rows(rows, drop_ids))[:, 0]

    def from_rows(self, rows, drop_ids=None):
        """The vectors of catalogue rows [B] (int64; index_catalog() first): what call() returns
        for those items' strings. drop_ids: [B] bool, rows embedded without their id (the
        out-of-vocabulary id row 0: content alone), for id-dropout while training."""
        parts = [self.item.embedding(self._id_rows(rows, drop_ids))]
        for name, bag in self.content.items():
            values, splits = self._content_ids[name]
            ids = tf.gather(tf.RaggedTensor.from_row_splits(values, splits, validate=False),
                            rows)
            parts.append(bag.pool(ids))
        return self._project(parts)


# Training steps per call into the compiled graph: Keras' per-step Python (and every batch-level
# callback) runs once per this many batches.
STEPS_PER_EXECUTION = 32
# The metric holding the epoch's mean training loss (trainer/progress.py logs it).
MEAN_LOSS = "mean_loss"

# What tfrs.tasks.Retrieval adds to the logits of an accidental hit (the same item as the
# positive, elsewhere in the batch) and the floor of a sampling probability before its log.
_ACCIDENTAL_HIT_LOGIT = float(np.finfo(np.float32).min / 100.0)
_MIN_SAMPLING_PROBABILITY = 1e-6


def _product(a, b, dtype, **kwargs):
    """tf.matmul(a, b, **kwargs) with a and b rounded to `dtype` (bfloat16: the sums stay
    float32 inside the product) and a float32 result."""
    if dtype == tf.float32:
        return tf.matmul(a, b, **kwargs)
    return tf.cast(tf.matmul(tf.cast(a, dtype), tf.cast(b, dtype), **kwargs), tf.float32)


@tf.function(jit_compile=True)
def _loss_and_gradients(queries, candidates, candidate_rows, sampling_probability,
                        temperature, positive_offset, dtype=tf.float32):
    """One XLA-fused pass: the loss and its gradients with respect to both towers' vectors,
    the three matrix products in `dtype`."""
    logits = (_product(queries, candidates, dtype, transpose_b=True) / temperature
              - tf.math.log(tf.clip_by_value(sampling_probability,
                                             _MIN_SAMPLING_PROBABILITY, 1.0))[None, :])
    # Query i's positive is candidate positive_offset + i.
    positions = tf.cast(positive_offset, tf.int32) + tf.range(tf.shape(queries)[0])
    positive = tf.equal(positions[:, None], tf.range(tf.shape(candidates)[0])[None, :])
    hit = (tf.equal(tf.gather(candidate_rows, positions)[:, None], candidate_rows[None, :])
           & ~positive)
    logits = tf.where(hit, logits + _ACCIDENTAL_HIT_LOGIT, logits)
    log_normaliser = tf.reduce_logsumexp(logits, axis=1)
    loss = tf.reduce_sum(log_normaliser - tf.reduce_sum(tf.where(positive, logits, 0.0), axis=1))
    # d loss / d logits = softmax - one-hot(positive); then through the dot products.
    d_logits = (tf.exp(logits - log_normaliser[:, None])
                - tf.cast(positive, logits.dtype)) / temperature
    return (loss, _product(d_logits, candidates, dtype),
            _product(d_logits, queries, dtype, transpose_a=True))


def sampled_softmax_loss(queries, candidates, candidate_rows, sampling_probability,
                         temperature, positive_offset=0, precision="float32"):
    """The training loss: tfrs.tasks.Retrieval's loss with its temperature, log-Q correction
    and accidental-hit removal (tests/test_model.py checks loss and gradients are equal),
    computed with its gradients in one XLA-fused pass. On CPU the unfused version's passes
    over the [B, B + extra] logits (forward and autodiff backward) were most of a training
    step; this takes about a third of its time.

    Args:
      queries: [B, D] query vectors; query i's positive is candidate positive_offset + i.
      candidates: [C, D] candidate vectors (C >= positive_offset + B): the batch's items, and
        under several replicas every replica's (TwoTowerModel._global_batch_loss), then any
        uniform negatives.
      candidate_rows: [C] catalogue rows: a candidate with the same row as query i's
        positive is not a negative for query i.
      sampling_probability: [C] each candidate's expected share of the negatives
        (log-Q correction), or ones for none.
      temperature: logits are dot products divided by this.
      positive_offset: where the queries' positives start among the candidates (0 in one
        process; the replica's offset in the gathered global batch under several).
      precision: "float32", or "bfloat16": the logits' and gradients' matrix products take
        their inputs rounded to bfloat16 (sums in float32; the softmax and everything else
        stays float32), 1.5 to 1.9x faster on hardware with native bfloat16 products
        (trainer/hardware.py), the gradients within about 0.3% of float32's.
    Returns:
      The summed softmax cross-entropy over the B queries (Retrieval's SUM reduction).
    """
    dtype = tf.as_dtype(precision)

    @tf.custom_gradient
    def loss(queries, candidates):
        value, d_queries, d_candidates = _loss_and_gradients(
            queries, candidates, candidate_rows, sampling_probability, temperature,
            positive_offset, dtype)
        return value, lambda upstream: (upstream * d_queries, upstream * d_candidates)

    return loss(queries, candidates)


def _never_empty(gradient):
    """A sparse gradient (an embedding's IndexedSlices) with a zero row for index 0 added.

    The replicas' sparse gradients are summed by all-gathering their rows, and with
    MultiWorkerMirroredStrategy on CPU, TensorFlow 2.16's ring all-gather segfaults
    (RingGatherer -> CollectiveRemoteAccessLocal::MemCpyAsync) when one replica's tensor has
    no rows: an embedding none of whose rows that replica's batch touched (the authors' bag of
    a data set without authors; tests/test_multiworker.py ran into it). A zero row changes no
    sum, and Adagrad's update of a row whose gradient is zero leaves the row as it was.
    """
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    values, indices = gradient.values, gradient.indices
    zero = tf.zeros(tf.concat([[1], tf.shape(values)[1:]], axis=0), values.dtype)
    return tf.IndexedSlices(tf.concat([values, zero], axis=0),
                            tf.concat([indices, tf.zeros([1], indices.dtype)], axis=0),
                            gradient.dense_shape)


class TwoTowerModel(tfrs.Model):
    """Sampled-softmax retrieval over (user, item) interactions: each interaction's item
    against the batch's other items and, with config.uniform_negatives, items drawn uniformly
    from the catalogue (mixed negative sampling: in-batch negatives are drawn by popularity,
    uniform ones reach the long tail). The log-Q correction subtracts the log of each item's
    expected share of the negatives from both kinds.

    A training step works on catalogue rows: one lookup turns the batch's item ids into rows,
    and everything per item (content indices, sampling probability, accidental-hit identity)
    is gathered by row, so the per-interaction input is just (user id, item id).

    The catalogue's cold items (rows after the warm ones, catalog.warm_items) are never
    trained on nor drawn as negatives: they get their vectors from their content through the
    out-of-vocabulary id row, which config.id_dropout trains to place an item by its content.
    """

    def __init__(self, vocabularies: Vocabularies, catalog: Catalog, config: ModelConfig,
                 histories: Optional[Histories] = None):
        super().__init__()
        self.config = config
        self.catalog = catalog
        # The training loss's matrix products: config.loss_precision, auto resolved here.
        self.loss_precision = loss_precision(config.loss_precision)
        self.item_row = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(catalog.item_ids),
                                                tf.range(len(catalog), dtype=tf.int64)),
            default_value=-1)
        self.candidate_tower = CandidateTower(catalog.warm_ids, vocabularies, config)
        self.candidate_tower.index_catalog(catalog.content())
        self.query_tower = QueryTower(vocabularies.users, config, histories,
                                      self.candidate_tower.item.embedding)
        self.sampling_probability = tf.constant(catalog.sampling_probability, dtype=tf.float32)
        # Full-catalogue top-K metrics over a brute-force index of the item vectors, keyed by
        # catalogue row: indexed once training is done (index_catalog), as the vectors change
        # while training.
        # The epoch's mean training loss (TFRS reports only the last batch's as "loss"): kept
        # on the model, so nothing has to read the loss back after every batch.
        self.mean_loss = tf.keras.metrics.Mean(name=MEAN_LOSS)
        ks = tuple(k for k in (10, 50, 100) if k <= len(catalog)) or (len(catalog),)
        self.top_k_index = tfrs.layers.factorized_top_k.BruteForce(k=max(ks))
        self.task = tfrs.tasks.Retrieval(
            metrics=tfrs.metrics.FactorizedTopK(candidates=self.top_k_index, ks=ks),
            temperature=config.temperature,
            remove_accidental_hits=True,
        )

    def build_weights(self) -> None:
        """Creates every weight (Keras creates them on first call) in a fixed order, so the
        same seed gives the same initial weights, and before the first training step is
        traced (compile_model)."""
        self.candidate_tower.from_rows(tf.zeros([1], tf.int64))
        self.query_tower(tf.constant([""]))
        if self.candidate_tower.bias is not None:
            self.candidate_tower.bias_of_rows(tf.zeros([1], tf.int64))

    # Traced as plain Python, not through AutoGraph: the step has no tensor-dependent Python
    # control flow, and converting it (Keras, TFRS and the towers: some 600 functions) took
    # about 3 s of every fit()'s first step.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, inputs):
        """tfrs.Model's step; under several replicas no sparse gradient is empty (see
        _never_empty), as TensorFlow's CPU ring all-gather crashes on an empty tensor."""
        if self.distribute_strategy.num_replicas_in_sync <= 1:
            return super().train_step(inputs)
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization_loss = sum(self.losses)
            total_loss = loss + regularization_loss
        gradients = tape.gradient(total_loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(map(_never_empty, gradients),
                                           self.trainable_variables))
        metrics = {metric.name: metric.result() for metric in self.metrics}
        metrics.update(loss=loss, regularization_loss=regularization_loss,
                       total_loss=total_loss)
        return metrics

    # Not converted by AutoGraph (nor anything it calls: the towers, the Keras layers, the
    # task): it has no Python control flow on tensors, and converting it all when Keras traces
    # the train and test steps was most of a first training's start-up (ML-100K, fresh process:
    # first epoch 18.7 s against 8.5 s unconverted; steady epochs 2.2 s either way; same loss).
    @tf.autograph.experimental.do_not_convert
    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False):
        # Interactions with items outside the warm catalogue are dropped by the input pipeline
        # (trainer.dataset.keep_items), so every row here is in [0, warm items).
        rows = self.item_row.lookup(features[ITEM_ID])
        # Only a history-pooling user tower needs the target's row (to leave it out).
        leave_out = rows if self.query_tower.item_embedding is not None else None
        queries = self.query_tower(features[USER_ID], leave_out=leave_out)
        replicas = tf.distribute.get_replica_context()
        drop_ids = self._id_dropout(features, training)
        if training and replicas is not None and replicas.num_replicas_in_sync > 1:
            return self._global_batch_loss(replicas, queries, rows, drop_ids)
        extra = self.config.uniform_negatives if training else 0
        if extra:
            rows = tf.concat([rows, tf.random.uniform([extra], 0, self.catalog.warm_items,
                                                      dtype=tf.int64)], axis=0)
            if drop_ids is not None:
                drop_ids = tf.concat([drop_ids, tf.zeros([extra], tf.bool)], axis=0)
        candidates = self.candidate_tower.from_rows(rows, drop_ids)
        queries = self._biased_queries(queries)
        candidates = self._biased_candidates(candidates, rows, drop_ids)
        probability = self._negative_share(rows, tf.shape(queries)[0], extra)
        if training:
            loss = sampled_softmax_loss(
                queries, candidates, rows,
                tf.ones_like(rows, tf.float32) if probability is None else probability,
                self.config.temperature, precision=self.loss_precision)
            self.mean_loss.update_state(loss)
            return loss
        # Evaluation: the same loss through TFRS, with the full-catalogue top-K metrics.
        loss = self.task(queries, candidates, candidate_sampling_probability=probability,
                         candidate_ids=rows)
        self.mean_loss.update_state(loss)
        return loss

    def _biased_queries(self, queries):
        """With config.item_bias, queries get one more value, the temperature, and candidates
        (_biased_candidates) their bias: [q, temperature] . [c, bias] = q . c + temperature *
        bias, so the logits (/ temperature) are cosine / temperature + bias. Unchanged
        without item_bias."""
        if self.candidate_tower.bias is None:
            return queries
        return tf.concat([queries, tf.fill([tf.shape(queries)[0], 1],
                                           tf.constant(self.config.temperature, queries.dtype))],
                         axis=1)

    def _biased_candidates(self, candidates, rows, drop_ids=None):
        """See _biased_queries: the candidate vectors of catalogue `rows` with their bias."""
        if self.candidate_tower.bias is None:
            return candidates
        bias = self.candidate_tower.bias_of_rows(rows, drop_ids)
        return tf.concat([candidates, bias[:, None]], axis=1)

    def _id_dropout(self, features, training):
        """[B] bool: the interactions whose item is embedded without its id while training
        (config.id_dropout of them), or None. Drawn by hashing (seed, step, user, item), so one
        process and several replicas drop the same interactions of a global batch."""
        if not training or not self.config.id_dropout:
            return None
        step = tf.strings.as_string(tf.cast(self.optimizer.iterations, tf.int64))
        keys = tf.strings.join([str(self.config.seed), step, features[USER_ID],
                                features[ITEM_ID]], separator="\x1f")
        buckets = 1 << 30
        draw = tf.strings.to_hash_bucket_fast(keys, buckets)
        return draw < int(self.config.id_dropout * buckets)

    def _negative_share(self, rows, batch, extra: int):
        """The log-Q correction's sampling probabilities of candidate `rows` (None when
        config.logq_correction is off): each item's expected share of the negatives, its
        popularity as an in-batch negative plus extra / batch / catalogue for the `extra`
        uniform draws per batch of `batch` interactions (relative values are what count)."""
        if not self.config.logq_correction:
            return None
        return (tf.gather(self.sampling_probability, rows)
                + extra / tf.cast(batch, tf.float32) / self.catalog.warm_items)

    def _global_batch_loss(self, replicas: tf.distribute.ReplicaContext, queries, rows,
                           drop_ids=None):
        """The training loss of this replica's queries against the global batch, under a
        multi-replica strategy (trainer/distribute.py): the softmax is over the same
        candidates as one process training on the whole global batch.

        Every replica's candidate vectors are all-gathered (differentiable: the gradient of
        a gathered vector is summed over the replicas whose queries used it and comes back to
        the replica that computed it; id-dropout is drawn per interaction, see _id_dropout),
        with their catalogue rows and owning replica; this
        replica's positives start at the number of gathered candidates owned by lower
        replicas (replica batches may differ in size). Sampling probabilities are gathered by
        row, as in one process, and uniform negatives are the same rows on every replica
        (drawn from the seed and the optimizer's step, so config.uniform_negatives is per
        global batch, as in one process).

        Gradients: each replica's loss is the SUM over its own queries, and the optimizer
        sums the replicas' gradients (tf_keras' apply_gradients all-reduces with SUM, and
        tfrs.Model.train_step does not scale by the number of replicas), so the applied
        gradient is that of the global batch's summed loss: the one-process gradient.
        """
        local = self.candidate_tower.from_rows(rows, drop_ids)
        queries = self._biased_queries(queries)
        local = self._biased_candidates(local, rows, drop_ids)
        owner = tf.fill(tf.shape(rows), tf.cast(replicas.replica_id_in_sync_group, tf.int64))
        candidates = replicas.all_gather(local, axis=0)
        gathered = replicas.all_gather(tf.stack([rows, owner], axis=1), axis=0)
        all_rows = gathered[:, 0]
        offset = tf.reduce_sum(tf.cast(
            gathered[:, 1] < tf.cast(replicas.replica_id_in_sync_group, tf.int64), tf.int32))
        extra = self.config.uniform_negatives
        if extra:
            uniform = tf.random.stateless_uniform(
                [extra], seed=tf.stack([tf.constant(self.config.seed, tf.int64),
                                        tf.cast(self.optimizer.iterations, tf.int64)]),
                minval=0, maxval=self.catalog.warm_items, dtype=tf.int64)
            negatives = self._biased_candidates(self.candidate_tower.from_rows(uniform), uniform)
            candidates = tf.concat([candidates, negatives], 0)
            all_rows = tf.concat([all_rows, uniform], axis=0)
        probability = self._negative_share(all_rows, tf.shape(gathered)[0], extra)
        if probability is None:
            probability = tf.ones_like(all_rows, tf.float32)
        loss = sampled_softmax_loss(queries, candidates, all_rows, probability,
                                    self.config.temperature, positive_offset=offset,
                                    precision=self.loss_precision)
        # Keras' logs add up the replicas' own results (tf_keras' "auto" reduction is a sum),
        # so the logged mean_loss is the mean of the global batches' summed losses.
        self.mean_loss.update_state(loss)
        return loss

    def index_catalog(self) -> None:
        """Indexes the current item vectors for the top-K metrics; call before evaluate()."""
        rows = tf.range(len(self.catalog), dtype=tf.int64)
        self.top_k_index.index(self._biased_candidates(self.item_embeddings(), rows), rows)

    def score_offsets(self) -> np.ndarray:
        """[len(catalog)] what recommend adds to a user's cosine with each item: temperature
        times the item's learned bias (config.item_bias; cold items get the out-of-vocabulary
        row's, as they get its id embedding), so that ranking by cosine + offset is ranking by
        the training logits; zeros without item_bias."""
        if self.candidate_tower.bias is None:
            return np.zeros(len(self.catalog), np.float32)
        rows = tf.range(len(self.catalog), dtype=tf.int64)
        return (self.config.temperature * self.candidate_tower.bias_of_rows(rows)).numpy()

    def item_embeddings(self, batch_size: int = 4096) -> tf.Tensor:
        """[len(catalog), embedding_dim] unit vectors, in catalog order."""
        rows = tf.data.Dataset.range(len(self.catalog)).batch(batch_size)
        return tf.concat([self.candidate_tower.from_rows(batch) for batch in rows], axis=0)


def compile_model(vocabularies: Vocabularies, catalog: Catalog, config: ModelConfig,
                  histories: Optional[Histories] = None) -> TwoTowerModel:
    """A seeded, compiled two-tower. `histories` (trainer.catalog.build_histories) are
    required when config.user_history is set, and ignored when it is not."""
    if config.user_history and histories is None:
        raise ValueError("config.user_history needs the users' histories (build_histories)")
    tf.keras.utils.set_random_seed(config.seed)
    model = TwoTowerModel(vocabularies, catalog, config,
                          histories if config.user_history else None)
    # Several steps per call run in a graph loop whose iterations may overlap, and under
    # MultiWorkerMirroredStrategy their collectives then pair across steps ("Shape mismatch in
    # the collective instance", tests/test_multiworker.py): one step per call there.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=config.learning_rate),
                  steps_per_execution=STEPS_PER_EXECUTION if replicas == 1 else 1)
    # Every weight and optimizer slot exists before fit(): created while Keras traces the
    # first step instead, they make it trace the whole training function twice.
    model.build_weights()
    model.optimizer.build(model.trainable_variables)
    return model
