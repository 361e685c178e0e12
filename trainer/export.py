"""The exported SavedModel: the serving contract of DESIGN.md, computed inside the model.

Signatures (all ids are strings; k is per row, 1..max_k; shorter results are padded with '' ids):

  serving_default  item_ids[N]                      -> embeddings[N,D], found[N], cold[N],
                                                       score_offset[N]: what recommend adds
                                                       to a user's cosine with the item
  similar_items    item_ids[N], k[N]                -> found[N] + top-k item_ids, titles, genres,
                                                       authors, scores (cosine), cold [N,K]; the
                                                       query item itself is never among them
  recommend        user_id[N], session_item_ids[N,M], k[N]
                                                    -> user_found[N], session_found[N,M],
                                                       strategy[N] + top-k [N,K]; scores:
                                                       cosine + the item's score_offset
  user_embeddings  user_ids[N]                      -> embeddings[N,D], found[N]
  search           query[N], k[N]                   -> top-k [N,K] of titles matching the query
  item_info        item_ids[N]                      -> found[N], titles, genres, authors,
                                                       popularity, cold [N]
  catalog_items    rows[N] (int64, 0 = most-rated)  -> found[N], item_ids, titles, genres,
                                                       authors, popularity, cold, catalog_size [N]
  embed_content    titles[N], genres[N], authors[N] -> embeddings[N,D]: an item placed by its
                                                       content alone, as the catalogue's cold
                                                       items are (genres/authors '|'-separated)

Unknown ids come back with found=False and zero vectors, never the out-of-vocabulary embedding.
Cold items (trainer/catalog.py: outside the item vocabulary, embedded from their content) are
in the catalogue after the warm ones and flagged cold=True wherever items come back; with the
model's cold_neighbours false, similar_items and recommend return warm items only (the
`returnable` rows, which the evaluation gate ranks too).

Beside the signatures the export carries what the next run's warm start reads (no signature
uses it): every vocabulary as a string variable, the embedding tables they index (the item
tower's included) and both towers' dense layers (trainer/warm_start.py).
"""

import math

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
from tf_keras.src.saving.legacy.saved_model import utils as keras_saved_model_utils

from towergraph import constants
from towergraph.constants import (DEFAULT_MAX_K, DEFAULT_MODEL_NAME, MAX_CONTENT_CHARS,
                                  MAX_SEARCH_QUERY_CHARS,
                                  MAX_SESSION_ITEMS)
from trainer.features import AUTHORS, GENRES, TITLE
from trainer.model import TwoTowerModel
from trainer.warm_start import exported_state

# Search scores: how the title matches the query, plus up to POPULARITY_BONUS for popularity.
PREFIX_MATCH, PHRASE_MATCH, ALL_WORDS_MATCH = 3.0, 2.0, 1.0
POPULARITY_BONUS = 0.5

_K = tf.TensorSpec([None], tf.int32, name="k")


def _signature(input_signature):
    """A serving signature's tf.function, traced as plain Python, not through AutoGraph: no
    signature has Python control flow on tensors, and AutoGraph converted them and every Keras
    layer they call (about 350 functions) on a process's first export. With tf_keras' layer
    traces also left out (export_serving_model), a first export took 1.5 to 1.7 s against 7.5
    to 9.0 s (ML-100K, fresh process each)."""
    return tf.function(input_signature=input_signature, autograph=False)


def _normalize_title(text):
    return tf.strings.strip(tf.strings.lower(text, encoding="utf-8"))


def _contains(haystack, needle, prefix_only=False):
    """Literal (not regex) match of a scalar needle in every haystack string."""
    # \Q...\E quotes the needle for RE2; an '\E' inside it would end the quoting early.
    quoted = "\\Q" + tf.strings.regex_replace(needle, r"\\E", "") + "\\E"
    return tf.strings.regex_full_match(haystack, "(?s)" + ("" if prefix_only else ".*")
                                       + quoted + ".*")


class ServingModule(tf.Module):
    """The trained towers plus the catalog (ids, titles, content, precomputed item vectors)."""

    def __init__(self, model: TwoTowerModel, max_k: int = DEFAULT_MAX_K):
        super().__init__(name=DEFAULT_MODEL_NAME)
        catalog = model.catalog
        empty = [""] * len(catalog)
        self.max_k = max_k
        self.query_tower = model.query_tower
        # The next run's warm start (trainer/warm_start.py, whose STATE names this attribute):
        # every vocabulary, the embedding tables they index, both towers' dense layers.
        self.warm_start = exported_state(model)
        self.item_vectors = tf.Variable(model.item_embeddings(), trainable=False)
        # What recommend adds to the cosine (TwoTowerModel.score_offsets; zeros without
        # item_bias): learned popularity, which unit vectors cannot express.
        self.score_offsets = tf.Variable(model.score_offsets(), trainable=False)
        self.item_ids = tf.Variable(catalog.item_ids, trainable=False)
        self.titles = tf.Variable(catalog.titles, trainable=False)
        self.genres = tf.Variable(catalog.genres or empty, trainable=False)
        self.authors = tf.Variable(catalog.authors or empty, trainable=False)
        self.popularity = tf.Variable(catalog.counts, dtype=tf.int64, trainable=False)
        self.cold = tf.Variable(catalog.cold, dtype=tf.bool, trainable=False)
        # The rows recommend and similar_items may return: every row, or (cold_neighbours
        # false) the warm ones only. The gate ranks the same rows
        # (trainer.evaluation.load_exported), so it judges what recommend serves.
        self.returnable = tf.Variable(
            np.ones(len(catalog), bool) if model.config.cold_neighbours else ~catalog.cold,
            dtype=tf.bool, trainable=False)
        self.candidate_tower = model.candidate_tower
        self.search_titles = tf.Variable(_normalize_title(tf.constant(catalog.titles)),
                                         trainable=False)
        log_counts = np.log1p(catalog.counts.astype(np.float64))
        self.popularity_score = tf.Variable(
            (POPULARITY_BONUS * log_counts / max(log_counts.max(), 1e-9)).astype(np.float32),
            trainable=False)
        self.row_of_item = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(catalog.item_ids),
                                                tf.range(len(catalog), dtype=tf.int64)),
            default_value=-1)

    # -- helpers ---------------------------------------------------------------------------

    def _rows(self, item_ids):
        rows = self.row_of_item.lookup(item_ids)
        return rows, rows >= 0

    def _vectors(self, rows, found):
        vectors = tf.gather(self.item_vectors, tf.maximum(rows, 0))
        return vectors * tf.cast(found, vectors.dtype)[..., None]

    def _top_k(self, scores, k, usable):
        """Top-k of [N, C] scores per row (-inf means never), padded with '' ids."""
        tf.debugging.assert_greater_equal(k, 1, message="k must be at least 1")
        tf.debugging.assert_less_equal(k, self.max_k,
                                       message=f"k must be at most {self.max_k}")
        width = tf.minimum(tf.reduce_max(tf.concat([k, [0]], axis=0)), tf.shape(scores)[1])
        top = tf.math.top_k(scores, k=width)
        keep = ((tf.range(width)[None, :] < k[:, None]) & tf.math.is_finite(top.values)
                & usable[:, None])

        def column(values, blank):
            return tf.where(keep, tf.gather(values, top.indices), blank)

        return {
            "item_ids": column(self.item_ids, ""),
            "titles": column(self.titles, ""),
            "genres": column(self.genres, ""),
            "authors": column(self.authors, ""),
            "scores": tf.where(keep, top.values, 0.0),
            "cold": column(self.cold, False),
        }

    def _neighbours(self, scores):
        """Scores of the rows that may not be returned (returnable) set to -inf."""
        return tf.where(self.returnable[None, :], scores, -math.inf)

    def _exclude(self, scores, rows):
        """Sets the scores of the given catalog rows ([N, M], -1 = none) to -inf."""
        hit = tf.reduce_any(tf.one_hot(rows, tf.shape(scores)[1], on_value=True,
                                       off_value=False, dtype=tf.bool), axis=1)
        return tf.where(hit, -math.inf, scores)

    # -- signatures ------------------------------------------------------------------------

    @_signature(input_signature=[tf.TensorSpec([None], tf.string, name="item_ids")])
    def item_embeddings(self, item_ids):
        rows, found = self._rows(item_ids)
        return {"embeddings": self._vectors(rows, found), "found": found,
                "cold": found & tf.gather(self.cold, tf.maximum(rows, 0)),
                "score_offset": tf.where(found, tf.gather(self.score_offsets,
                                                          tf.maximum(rows, 0)), 0.0)}

    @_signature(input_signature=[tf.TensorSpec([None], tf.string, name="item_ids"), _K])
    def similar_items(self, item_ids, k):
        rows, found = self._rows(item_ids)
        scores = tf.matmul(self._vectors(rows, found), self.item_vectors, transpose_b=True)
        scores = self._exclude(self._neighbours(scores), rows[:, None])
        return {"found": found, **self._top_k(scores, k, found)}

    @_signature(input_signature=[tf.TensorSpec([None], tf.string, name="user_ids")])
    def user_embeddings(self, user_ids):
        found = self.query_tower.known(user_ids)
        vectors = self.query_tower(user_ids) * tf.cast(found, tf.float32)[:, None]
        return {"embeddings": vectors, "found": found}

    @_signature(input_signature=[
        tf.TensorSpec([None], tf.string, name="user_id"),
        tf.TensorSpec([None, None], tf.string, name="session_item_ids"), _K])
    def recommend(self, user_id, session_item_ids, k):
        """Known user, browsing session (cold start), or both; popularity when neither is known.

        The user and session vectors are unit length, so their sum weighs them equally.
        Items in the session are not recommended again.
        """
        tf.debugging.assert_less_equal(
            tf.shape(session_item_ids)[1], MAX_SESSION_ITEMS,
            message=f"a session holds at most {MAX_SESSION_ITEMS} items")
        user = self.user_embeddings(user_id)
        session_rows, session_found = self._rows(session_item_ids)
        has_session = tf.reduce_any(session_found, axis=1)
        session = tf.math.l2_normalize(
            tf.reduce_sum(self._vectors(session_rows, session_found), axis=1), axis=-1)
        query = user["embeddings"] + session
        personal = tf.matmul(query, self.item_vectors, transpose_b=True) + self.score_offsets
        popular = tf.broadcast_to(self.popularity_score, tf.shape(personal))
        known = user["found"] | has_session
        scores = tf.where(known[:, None], personal, popular)
        scores = self._exclude(self._neighbours(scores), session_rows)
        strategy = tf.where(user["found"],
                            tf.where(has_session, "user+session", "user"),
                            tf.where(has_session, "session", "popular"))
        usable = tf.ones_like(known)
        return {"user_found": user["found"], "session_found": session_found,
                "strategy": strategy, **self._top_k(scores, k, usable)}

    @_signature(input_signature=[tf.TensorSpec([None], tf.string, name="query"), _K])
    def search(self, query, k):
        """Title search for type-ahead: 3 = title starts with the query, 2 = contains it,
        1 = contains every word of it (in any order); plus up to 0.5 for popularity. Only the
        first MAX_SEARCH_QUERY_CHARS characters of a query count."""
        titles = self.search_titles

        def score(text):
            words = tf.strings.split(text)
            every_word = tf.reduce_all(
                tf.map_fn(lambda word: _contains(titles, word), words,
                          fn_output_signature=tf.TensorSpec([None], tf.bool)), axis=0)
            match = tf.where(_contains(titles, text, prefix_only=True), PREFIX_MATCH,
                             tf.where(_contains(titles, text), PHRASE_MATCH,
                                      tf.where(every_word, ALL_WORDS_MATCH, 0.0)))
            match = tf.where(tf.strings.length(text) > 0, match, 0.0)
            return tf.where(match > 0, match + self.popularity_score, -math.inf)

        # Bounded work and a bounded regex whatever a client sends: longer queries are cut.
        query = tf.strings.substr(query, 0, MAX_SEARCH_QUERY_CHARS, unit="UTF8_CHAR")
        scores = tf.map_fn(score, _normalize_title(query),
                           fn_output_signature=tf.TensorSpec([None], tf.float32))
        scores = tf.reshape(scores, [-1, tf.shape(titles)[0]])
        return self._top_k(scores, k, tf.ones_like(query, dtype=tf.bool))

    @_signature(input_signature=[tf.TensorSpec([None], tf.string, name="item_ids")])
    def item_info(self, item_ids):
        rows, found = self._rows(item_ids)
        safe = tf.maximum(rows, 0)

        def column(values, blank):
            return tf.where(found, tf.gather(values, safe), blank)

        return {"found": found, "titles": column(self.titles, ""),
                "genres": column(self.genres, ""), "authors": column(self.authors, ""),
                "popularity": column(self.popularity, tf.constant(0, tf.int64)),
                "cold": column(self.cold, False)}

    @_signature(input_signature=[tf.TensorSpec([None], tf.int64, name="rows")])
    def catalog_items(self, rows):
        """Items by catalogue position (0 = most-rated): starting points for a browser, a
        page of the catalogue, or a random sample; rows outside the catalogue are not found."""
        size = tf.shape(self.item_ids, out_type=tf.int64)[0]
        found = (rows >= 0) & (rows < size)
        safe = tf.where(found, rows, 0)

        def column(values, blank):
            return tf.where(found, tf.gather(values, safe), blank)

        return {"found": found, "item_ids": column(self.item_ids, ""),
                "titles": column(self.titles, ""), "genres": column(self.genres, ""),
                "authors": column(self.authors, ""),
                "popularity": column(self.popularity, tf.constant(0, tf.int64)),
                "cold": column(self.cold, False),
                "catalog_size": tf.fill(tf.shape(rows), size)}

    @_signature(input_signature=[tf.TensorSpec([None], tf.string, name="titles"),
                                 tf.TensorSpec([None], tf.string, name="genres"),
                                 tf.TensorSpec([None], tf.string, name="authors")])
    def embed_content(self, titles, genres, authors):
        """Places an item by its content alone (a brand-new item, without retraining): the
        vector the catalogue holds for a cold item of the same title and genres/authors
        ('|'-separated, '' for none; a kind of content the model was not trained with is
        ignored). Unit length; compare with item vectors by dot product. Only the first
        MAX_CONTENT_CHARS characters of each string count."""
        tf.debugging.assert_equal(tf.shape(genres), tf.shape(titles),
                                  message="titles, genres and authors need one row each")
        tf.debugging.assert_equal(tf.shape(authors), tf.shape(titles),
                                  message="titles, genres and authors need one row each")
        titles, genres, authors = (
            tf.strings.substr(text, 0, MAX_CONTENT_CHARS, unit="UTF8_CHAR")
            for text in (titles, genres, authors))
        vectors = self.candidate_tower.from_content(
            {TITLE: titles, GENRES: genres, AUTHORS: authors})
        return {"embeddings": vectors}


def export_serving_model(model: TwoTowerModel, export_dir: str,
                         max_k: int = DEFAULT_MAX_K) -> ServingModule:
    """Writes the SavedModel with every signature of the serving contract."""
    module = ServingModule(model, max_k=max_k)
    signatures = {
        constants.SIGNATURE_EMBEDDINGS: module.item_embeddings,
        constants.SIGNATURE_SIMILAR_ITEMS: module.similar_items,
        constants.SIGNATURE_RECOMMEND: module.recommend,
        constants.SIGNATURE_USER_EMBEDDINGS: module.user_embeddings,
        constants.SIGNATURE_SEARCH: module.search,
        constants.SIGNATURE_ITEM_INFO: module.item_info,
        constants.SIGNATURE_CATALOG_ITEMS: module.catalog_items,
        constants.SIGNATURE_EMBED_CONTENT: module.embed_content,
    }
    assert tuple(signatures) == constants.SIGNATURES
    # Without Keras' own traces of the towers' layers (what `model.save(save_traces=False)`
    # leaves out): the signatures above are the whole contract and nothing loads the towers
    # as Keras layers, and tracing them (through AutoGraph) took most of each export. The
    # option is tf_keras' own (private module; tf_keras is pinned in requirements/lock.txt).
    with keras_saved_model_utils.keras_option_scope(save_traces=False):
        tf.saved_model.save(module, export_dir, signatures=signatures)
    return module
