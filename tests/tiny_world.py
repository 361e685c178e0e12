"""A tiny world whose right answers are known, for tests of the model, serving and graphs.

40 items in two genres with the genre's word in their titles, 80 users who each read only one
genre: a model that learned anything puts same-genre items together. One title is hostile
markup, which every view must show as text.
"""

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from trainer.catalog import build_catalog, build_histories
from trainer.config import ModelConfig
from trainer.export import export_serving_model
from trainer.model import Vocabularies, compile_model

N_ITEMS, N_USERS = 40, 80
GENRES = ["Fantasy", "Science Fiction"]
MAX_K = 20
HOSTILE_ITEM = 39
HOSTILE_MARKUP = "<img src=x onerror=alert(1)>"
MODEL_NAME = "towergraph"


def genre_of(item: int) -> str:
    return GENRES[item % 2]


def title_of(item: int) -> str:
    word = "Dragon" if item % 2 == 0 else "Robot"
    title = f"The {word} Chronicles {item}"
    return f"{title} {HOSTILE_MARKUP}" if item == HOSTILE_ITEM else title


def interactions():
    rng = np.random.default_rng(0)
    rows = []
    for user in range(N_USERS):
        same_genre = [item for item in range(N_ITEMS) if item % 2 == user % 2]
        for item in rng.choice(same_genre, 10, replace=False):
            rows.append((f"u{user}", str(item)))
    users, items = map(np.array, zip(*rows))
    return {"user_id": users, "item_id": items,
            "title": np.array([title_of(int(i)) for i in items]),
            "genres": np.array([genre_of(int(i)) for i in items])}


def _batches(data):
    batches = [{name: values[start:start + 100] for name, values in data.items()}
               for start in range(0, len(data["item_id"]), 100)]
    return [{name: np.char.encode(values.astype(str)) for name, values in batch.items()}
            for batch in batches]  # as tf.data hands them over: bytes


def catalog(data):
    return build_catalog(_batches(data), [str(i) for i in range(N_ITEMS)])


def train(data, items):
    vocabularies = Vocabularies(users=[f"u{u}" for u in range(N_USERS)],
                                title_tokens=["the", "dragon", "robot", "chronicles"],
                                genres=GENRES)
    config = ModelConfig(embedding_dim=16, candidate_layers=(32,), batch_size=64,
                         learning_rate=0.2, epochs=15)
    histories = build_histories(_batches(data), vocabularies.users, items.item_ids)
    model = compile_model(vocabularies, items, config, histories)
    dataset = tf.data.Dataset.from_tensor_slices(data).shuffle(1000, seed=1).batch(64)
    model.fit(dataset, epochs=config.epochs, verbose=0)
    model.index_catalog()
    model.metrics_after_training = model.evaluate(dataset, return_dict=True, verbose=0)
    return model


def export(model, model_base_path, version: int = 1) -> str:
    """Exports as TF Serving lays versions out: <model_base_path>/<version>/."""
    path = str(model_base_path / str(version))
    export_serving_model(model, path, max_k=MAX_K)
    return path
