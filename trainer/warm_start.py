"""Warm start: a new model starts from the production model's weights instead of at random.

The pipeline's `production_model` resolver hands the Trainer the latest blessed model
(fn_args.base_model). Its export carries what this module needs (exported_state, tracked by
trainer/export.py's ServingModule): every vocabulary the model looks strings up in, the
embedding table each one indexes, and the towers' dense layers. A freshly built model is then
initialised from it (apply):

  * embedding tables (users, items, title tokens, genres, authors; the items' learned
    biases, indexed by the item vocabulary): the row of every value
    present in both vocabularies is copied, and the out-of-vocabulary row 0; values new to
    this run keep their fresh initialisation; values the base knew and this run does not are
    dropped. So a vocabulary may grow or shrink between runs: row i + 1 is always value i of
    this run's own vocabulary.
  * dense layers (the towers' projections): copied when kernel and bias have the base's
    shapes (and, for the item tower's first layer, its input is made of the same features),
    fresh otherwise.

The optimizer (Adagrad's accumulators) starts fresh. A base that is missing, unreadable, or
exported before warm start existed is logged and the model trains from scratch: a warm start
never fails a run.

The base is read from its SavedModel's variables checkpoint, following its object graph by
name (warm_start/embeddings/users, ...), so no signature or function of it is loaded.
"""

import dataclasses
import logging
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from trainer.features import AUTHORS, GENRES, TITLE
from trainer.model import TwoTowerModel

# The ServingModule attribute holding the state (trainer/export.py) and its parts.
STATE = "warm_start"
_VOCABULARIES, _EMBEDDINGS, _DENSE = "vocabularies", "embeddings", "dense"
# Vocabulary names, as warm_start.json reports them, in that order.
USERS, ITEMS, TITLE_TOKENS = "users", "items", "title_tokens"
# A table indexed by another's vocabulary: the items' biases (ModelConfig.item_bias).
ITEM_BIAS = "item_bias"
_VOCABULARY_OF = {ITEM_BIAS: ITEMS}
_CONTENT = {TITLE: TITLE_TOKENS, GENRES: "genres", AUTHORS: "authors"}
_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VALUE = "VARIABLE_VALUE"


def _lookups(model: TwoTowerModel) -> Dict[str, tf.keras.layers.Layer]:
    """Vocabulary name -> the layer whose `index` (StringLookup) picks rows of its `embedding`:
    users, items, title tokens, and genres/authors when the data has them."""
    lookups = {USERS: model.query_tower.user, ITEMS: model.candidate_tower.item}
    for feature, bag in model.candidate_tower.content.items():
        lookups[_CONTENT[feature]] = bag
    return lookups


def _tables(model: TwoTowerModel) -> Dict[str, Tuple[str, tf.Variable]]:
    """Table name -> (the name of the vocabulary whose StringLookup indexes its rows, the
    variable): one per vocabulary, plus the item biases when the model has them."""
    tables = {name: (name, layer.embedding.embeddings)
              for name, layer in _lookups(model).items()}
    if model.candidate_tower.bias is not None:
        tables[ITEM_BIAS] = (ITEMS, model.candidate_tower.bias.embeddings)
    return tables


def _towers(model: TwoTowerModel) -> Dict[str, tf.keras.Model]:
    return {"query_tower": model.query_tower, "candidate_tower": model.candidate_tower}


def _dense_layers(model: TwoTowerModel) -> Dict[str, Tuple[str, int, tf.keras.layers.Layer]]:
    """Report name ('candidate_tower/dense_0') -> (tower, position, Dense layer) of every
    projection layer."""
    return {f"{tower}/dense_{i}": (tower, i, layer)
            for tower, module in _towers(model).items()
            for i, layer in enumerate(module.projection)}


def _table_name(model: TwoTowerModel, name: str) -> str:
    """A table as a layer name of the report ('candidate_tower/item')."""
    layer = model.candidate_tower.bias if name == ITEM_BIAS else _lookups(model)[name]
    tower = "query_tower" if name == USERS else "candidate_tower"
    return f"{tower}/{layer.name}"


def exported_state(model: TwoTowerModel) -> tf.Module:
    """What an export carries for the next run's warm start (ServingModule.warm_start): each
    vocabulary as a string variable, the embedding variable it indexes, and the towers' dense
    layers' kernel and bias. The tables and layers are the model's own variables (saved once,
    whatever else refers to them; every one exists from compile_model on)."""
    state = tf.Module(name=STATE)
    lookups = _lookups(model)
    setattr(state, _VOCABULARIES, {
        name: tf.Variable(layer.index.get_vocabulary(include_special_tokens=False),
                          dtype=tf.string, trainable=False, name=f"{name}_vocabulary")
        for name, layer in lookups.items()})
    setattr(state, _EMBEDDINGS, {name: variable
                                 for name, (_, variable) in _tables(model).items()})
    setattr(state, _DENSE, {tower: [{"kernel": layer.kernel, "bias": layer.bias}
                                    for layer in module.projection]
                            for tower, module in _towers(model).items()})
    return state


# -- the report ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Rows:
    """One vocabulary's embedding rows: `carried` copied from the base, `new` initialised
    fresh (carried + new = this run's vocabulary), `dropped` the base's values that were not
    carried (carried + dropped = the base's vocabulary)."""

    carried: int
    new: int
    dropped: int


@dataclasses.dataclass(frozen=True)
class Report:
    """What a warm start carried over; base_model None: trained from scratch."""

    base_model: Optional[str] = None
    vocabularies: Mapping[str, Rows] = dataclasses.field(default_factory=dict)
    copied: Tuple[str, ...] = ()
    fresh: Tuple[str, ...] = ()

    def as_json(self) -> dict:
        """warm_start.json's content (the run summary reads it): {"base_model": null} for a
        model trained from scratch."""
        if self.base_model is None:
            return {"base_model": None}
        return {"base_model": self.base_model,
                **{name: dataclasses.asdict(rows) for name, rows in self.vocabularies.items()},
                "layers": {"copied": list(self.copied), "fresh": list(self.fresh)}}

    def summary(self) -> str:
        """One line: 'from B: 1,623 of 1,650 items and 930 of 943 users carried over; ...'."""
        if self.base_model is None:
            return "trained from scratch"
        parts = {name: rows for name, rows in self.vocabularies.items()
                 if name in (ITEMS, USERS)}
        carried = " and ".join(f"{rows.carried:,} of {rows.carried + rows.new:,} {name}"
                               for name, rows in parts.items())
        new = ", ".join(f"{rows.new:,} new {name}" for name, rows in parts.items())
        dropped = ", ".join(f"{rows.dropped:,} {name}" for name, rows in parts.items()
                            if rows.dropped)
        layers = len(self.copied) + len(self.fresh)
        return (f"from {self.base_model}: {carried} carried over; {new} initialised fresh"
                + (f"; dropped (no longer in the data): {dropped}" if dropped else "")
                + f"; {len(self.copied)} of {layers} layers copied"
                + (f" (fresh: {', '.join(self.fresh)})" if self.fresh else ""))


# -- reading the base ------------------------------------------------------------------------

class BaseUnusable(Exception):
    """The base model cannot be warm-started from; the message says why."""


@dataclasses.dataclass(frozen=True)
class Base:
    """A base model's warm-start state, read from its export."""

    path: str
    vocabularies: Dict[str, List[str]]
    embeddings: Dict[str, np.ndarray]
    dense: Dict[str, List[Tuple[np.ndarray, np.ndarray]]]   # tower -> [(kernel, bias)]


def _checkpoint(saved_model_dir: str) -> str:
    return os.path.join(saved_model_dir, tf.saved_model.VARIABLES_DIRECTORY,
                        tf.saved_model.VARIABLES_FILENAME)


def read_base(saved_model_dir: str) -> Base:
    """The warm-start state of an exported model (a SavedModel folder).

    Raises:
      BaseUnusable: no SavedModel there, an unreadable one, or one exported before warm
        start existed (no warm_start state), or an inconsistent state.
    """
    saved_model = os.path.join(saved_model_dir, tf.saved_model.SAVED_MODEL_FILENAME_PB)
    try:
        present = tf.io.gfile.exists(saved_model)
    except Exception as error:  # noqa: BLE001  (any failure to read means: from scratch)
        raise BaseUnusable(f"cannot read {saved_model_dir}: {error}") from error
    if not present:
        raise BaseUnusable(f"no SavedModel at {saved_model_dir}")
    try:
        reader = tf.train.load_checkpoint(_checkpoint(saved_model_dir))
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor(_OBJECT_GRAPH))
    except Exception as error:  # noqa: BLE001  (any failure to read means: from scratch)
        raise BaseUnusable(f"cannot read the variables of {saved_model_dir}: {error}") from error

    def child(node: int, name: str) -> Optional[int]:
        for ref in graph.nodes[node].children:
            if ref.local_name == name:
                return ref.node_id
        return None

    def children(node: int) -> Dict[str, int]:
        return {ref.local_name: ref.node_id for ref in graph.nodes[node].children}

    def value(node: int) -> np.ndarray:
        keys = [a.checkpoint_key for a in graph.nodes[node].attributes if a.name == _VALUE]
        if not keys:
            raise BaseUnusable(f"{saved_model_dir}: a warm-start object holds no variable")
        return reader.get_tensor(keys[0])

    state = child(0, STATE)
    parts = {part: child(state, part) for part in (_VOCABULARIES, _EMBEDDINGS, _DENSE)} \
        if state is not None else {}
    if state is None or None in parts.values():
        raise BaseUnusable(f"{saved_model_dir} was exported before warm start existed "
                           "(its export carries no vocabularies and embedding tables)")
    try:
        vocabularies = {name: [token.decode("utf-8") for token in value(node).tolist()]
                        for name, node in children(parts[_VOCABULARIES]).items()}
        embeddings = {name: value(node) for name, node in children(parts[_EMBEDDINGS]).items()}
        dense = {}
        for tower, node in children(parts[_DENSE]).items():
            layers = sorted(children(node).items(), key=lambda item: int(item[0]))
            dense[tower] = [(value(child(layer, "kernel")), value(child(layer, "bias")))
                            for _, layer in layers]
    except BaseUnusable:
        raise
    except Exception as error:  # noqa: BLE001
        raise BaseUnusable(f"cannot read the warm-start state of {saved_model_dir}: "
                           f"{error}") from error
    for name, table in embeddings.items():
        vocabulary = _VOCABULARY_OF.get(name, name)
        if vocabulary not in vocabularies or table.ndim != 2 \
                or table.shape[0] != len(vocabularies[vocabulary]) + 1:
            raise BaseUnusable(f"{saved_model_dir}: the {name} embedding table does not match "
                               "its vocabulary")
    return Base(saved_model_dir, vocabularies, embeddings, dense)


# -- initialising the new model --------------------------------------------------------------

def _carry_rows(fresh: np.ndarray, vocabulary: Sequence[str], base_table: np.ndarray,
                base_vocabulary: Sequence[str]) -> Tuple[np.ndarray, int]:
    """`fresh` (this model's initial table) with the rows of values both vocabularies hold,
    and row 0 (out of vocabulary), taken from the base; and how many values were carried."""
    position = {value: i for i, value in enumerate(base_vocabulary)}
    ours = [j for j, value in enumerate(vocabulary) if value in position]
    theirs = [position[vocabulary[j]] for j in ours]
    rows = fresh.copy()
    rows[0] = base_table[0]
    rows[np.asarray(ours, dtype=np.int64) + 1] = base_table[np.asarray(theirs, dtype=np.int64) + 1]
    return rows, len(ours)


def _plan(model: TwoTowerModel, base: Base):
    """The values to assign ([(variable, array)]) and the report, computed before any is
    assigned (so a surprise leaves the model as it was)."""
    assignments, vocabularies, copied, fresh = [], {}, [], []
    lookups = _lookups(model)
    for name, (vocabulary_name, variable) in _tables(model).items():
        vocabulary = lookups[vocabulary_name].index.get_vocabulary(include_special_tokens=False)
        table = base.embeddings.get(name)
        base_vocabulary = base.vocabularies.get(vocabulary_name, [])
        if table is None or table.shape[1] != variable.shape[1]:
            if table is not None:
                logging.info("warm start: %s embeddings are %d wide, the base's %d: fresh",
                             name, variable.shape[1], table.shape[1])
            vocabularies.setdefault(vocabulary_name,
                                    Rows(0, len(vocabulary), len(base_vocabulary)))
            fresh.append(_table_name(model, name))
            continue
        rows, carried = _carry_rows(variable.numpy(), vocabulary, table, base_vocabulary)
        assignments.append((variable, rows))
        vocabularies.setdefault(vocabulary_name, Rows(carried, len(vocabulary) - carried,
                                                      len(base_vocabulary) - carried))
        copied.append(_table_name(model, name))
    # The item tower's first layer reads the concatenated item-id and content embeddings: the
    # same shape from other features (genres replaced by authors) would mean something else.
    same_content = set(base.embeddings) - {ITEM_BIAS} == set(lookups)
    for name, (tower, index, layer) in _dense_layers(model).items():
        layers = base.dense.get(tower, [])
        usable = index < len(layers) and (tower != "candidate_tower" or index > 0
                                          or same_content)
        if usable and layers[index][0].shape == tuple(layer.kernel.shape) \
                and layers[index][1].shape == tuple(layer.bias.shape):
            assignments += [(layer.kernel, layers[index][0]), (layer.bias, layers[index][1])]
            copied.append(name)
        else:
            fresh.append(name)
    report = Report(base.path, {name: vocabularies[name] for name in
                                (ITEMS, USERS, TITLE_TOKENS, "genres", "authors")
                                if name in vocabularies},
                    tuple(copied), tuple(fresh))
    return assignments, report


def _everyone_read_it(model: TwoTowerModel, readable: bool) -> bool:
    """Whether every worker of a multi-worker run read the base (one worker reading it and
    another not would train diverging copies of the model); one process: `readable`."""
    strategy = model.distribute_strategy
    if strategy.num_replicas_in_sync <= 1:
        return readable
    failures = strategy.reduce(
        tf.distribute.ReduceOp.SUM,
        strategy.run(lambda: tf.constant(0.0 if readable else 1.0)), axis=None)
    return float(failures) == 0.0


def apply(model: TwoTowerModel, base_model: Optional[str]) -> Report:
    """Initialises a compiled, not yet trained model from the export at `base_model` (a
    SavedModel folder; None: nothing to do). Call it under the strategy scope the model was
    built in, on every worker (each reads the same base and assigns the same values).

    Returns:
      What was carried over; Report() (base_model None) when the model trains from scratch
      because there is no base or it cannot be used (logged, never raised).
    """
    if base_model is None:
        return Report()
    try:
        base = read_base(base_model)
    except BaseUnusable as error:
        logging.warning("warm start: %s; training from scratch", error)
        base = None
    if not _everyone_read_it(model, base is not None):
        if base is not None:
            logging.warning("warm start: another worker could not read %s; training from "
                            "scratch", base_model)
        return Report()
    # Every weight exists already: compile_model builds them (TwoTowerModel.build_weights).
    assignments, report = _plan(model, base)
    for variable, value in assignments:
        variable.assign(value)
    return report
