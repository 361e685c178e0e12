"""Settings of the model and its serving limits (no TensorFlow import, so configs load fast).

The loader, the `--set` parser and `setting(...)` live in trainer/settings.py; the names below
stay importable from here for the Trainer (trainer/run.py) and the pipeline config.
"""

import dataclasses
from typing import Any, Dict, Tuple

from towergraph.constants import DEFAULT_MAX_K  # noqa: F401  (re-exported for the config)
from trainer.settings import ConfigError, Layer, invalid, load, setting, settings  # noqa: F401

# model.loss_precision's values (trainer/hardware.py resolves auto).
LOSS_PRECISIONS = ("auto", "float32", "bfloat16")


def from_mapping(cls, values: Dict[str, Any], where: str, **nested: Any):
    """A settings dataclass from one mapping (e.g. the Trainer's custom_config["model"]);
    ConfigError (a ValueError) lists every unknown key, wrong type and invalid value, each
    naming `where`. `nested` supplies already-built fields."""
    return load(cls, [Layer(values, where)], **nested)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The two-tower model's knobs: the `model:` section of the pipeline config."""

    embedding_dim: int = setting(128, "size of the user and item vectors")
    query_layers: Tuple[int, ...] = setting((), "hidden ReLU layer sizes of the user tower")
    user_history: bool = setting(False, "the user tower also pools the item-id embeddings "
                                 "of the user's training items (the item being predicted left "
                                 "out while training); false: user id only")
    candidate_layers: Tuple[int, ...] = setting((128,), "hidden ReLU layer sizes of the item "
                                                "tower (id + title words + genres/authors); "
                                                "[]: those embeddings are summed")
    temperature: float = setting(0.3, "logits are cosines divided by this; lower is sharper")
    item_bias: bool = setting(True, "a learned per-item score offset beside the cosine "
                              "(recommend ranks by cosine + temperature * bias; "
                              "similar_items stays cosine)")
    logq_correction: bool = setting(True, "correct in-batch negatives for popular items being "
                                    "sampled more often (subtract log sampling probability)")
    uniform_negatives: int = setting(0, "catalogue items drawn uniformly per batch as extra "
                                     "negatives beside the in-batch ones (mixed negative "
                                     "sampling; 0: in-batch only)")
    id_dropout: float = setting(0.0, "share of training interactions whose item is embedded "
                                "without its id (the out-of-vocabulary id row), so the "
                                "content part alone learns to place an item (cold items)")
    cold_items: bool = setting(True, "items of the training examples outside the item "
                               "vocabulary (cut by top_items), then items of the item catalogue "
                               "(items.csv) that nobody rated, join the served catalogue as cold "
                               "items, embedded from their title and genres/authors alone, "
                               "flagged `cold`; they are not trained on")
    max_cold_items: int = setting(100_000, "most cold items in the catalogue (the most-rated "
                                  "kept): bounds the served catalogue and the content the "
                                  "Trainer holds for them")
    cold_neighbours: bool = setting(True, "cold items may appear among similar_items and "
                                    "recommend results (false: only warm items are returned; "
                                    "a cold item's own neighbours still work)")
    loss_precision: str = setting("auto", "number format of the in-batch loss's three matrix "
                                  "products: bfloat16 (inputs rounded to bfloat16, sums in "
                                  "float32, as on TPUs), float32, or auto: bfloat16 where the "
                                  "hardware multiplies it natively (a CPU with AVX-512 BF16 or "
                                  "AMX, a GPU of compute capability 8 or later), float32 "
                                  "elsewhere")
    learning_rate: float = setting(0.1, "Adagrad learning rate")
    epochs: int = setting(10, "passes over the training split")
    batch_size: int = setting(1024, "interactions per batch (also the in-batch negatives)")
    seed: int = setting(42, "seed for initialisation and shuffling")
    in_memory_interactions: int = setting(20_000_000, "training sets of up to this many "
                                          "interactions are read once into memory (about 50 "
                                          "bytes each) and fully reshuffled every epoch; larger "
                                          "ones are read from the files every epoch through a "
                                          "100,000-interaction shuffle buffer; 0: always the files")
    refit_on_all: bool = setting(True, "after the candidate the gate judges is trained on the "
                                 "train split, train the pushed model on train + eval (false: "
                                 "push the candidate itself)")
    refit_epochs: int = setting(5, "with refit_on_all, the pushed model is the candidate "
                                "trained this many more epochs on train + eval; 0: trained "
                                "again on train + eval for `epochs` epochs, from scratch (or "
                                "from the production model, with warm_start)")

    def __post_init__(self):
        positive = ("embedding_dim", "temperature", "learning_rate", "epochs", "batch_size")
        invalid([(name, f"must be positive, not {getattr(self, name)}") for name in positive
                 if getattr(self, name) <= 0]
                + ([("uniform_negatives", f"must be 0 or positive, not {self.uniform_negatives}")]
                   if self.uniform_negatives < 0 else [])
                + [(name, f"must be 0 or positive, not {getattr(self, name)}")
                   for name in ("max_cold_items", "refit_epochs", "in_memory_interactions")
                   if getattr(self, name) < 0]
                + ([("loss_precision", f"must be one of {', '.join(LOSS_PRECISIONS)}, "
                                       f"not {self.loss_precision!r}")]
                   if self.loss_precision not in LOSS_PRECISIONS else [])
                + ([("id_dropout", f"must be at least 0 and below 1, not {self.id_dropout}")]
                   if not 0 <= self.id_dropout < 1 else [])
                + [(name, f"every layer size must be positive, not {getattr(self, name)}")
                   for name in ("query_layers", "candidate_layers")
                   if any(units <= 0 for units in getattr(self, name))])
