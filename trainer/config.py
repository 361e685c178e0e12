"""Settings of the model and its serving limits (no TensorFlow import, so configs load fast)."""

import dataclasses
from typing import Any, Dict, Iterator, Tuple

from towergraph.constants import DEFAULT_MAX_K  # noqa: F401  (re-exported for the config)


def setting(default, help_text: str, **kwargs):
    """A dataclass field that carries its own documentation (flags and README use it)."""
    if isinstance(default, (list, dict)):
        raise TypeError("use a tuple or default_factory for mutable defaults")
    return dataclasses.field(default=default, metadata={"help": help_text}, **kwargs)


def settings(cls) -> Iterator[Tuple[str, Any, str]]:
    """(name, default, help) of every field of a settings dataclass."""
    for field in dataclasses.fields(cls):
        default = (field.default_factory() if field.default is dataclasses.MISSING
                   else field.default)
        yield field.name, default, field.metadata.get("help", "")


def from_mapping(cls, values: Dict[str, Any], where: str, **nested: Any):
    """Builds a settings dataclass from a mapping; unknown keys are errors naming `where`.

    Lists become tuples (YAML has no tuples); `nested` supplies already-built sub-settings.
    """
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping of settings, got {type(values).__name__}")
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown}; known: {sorted(known)}")
    values = {name: tuple(value) if isinstance(value, list) else value
              for name, value in values.items()}
    values.update(nested)
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The two-tower model's knobs: the `model:` section of the pipeline config."""

    embedding_dim: int = setting(64, "size of the user and item vectors")
    query_layers: Tuple[int, ...] = setting((), "hidden ReLU layer sizes of the user tower")
    candidate_layers: Tuple[int, ...] = setting((128,), "hidden ReLU layer sizes of the item "
                                                "tower (id + title words + genres/authors)")
    temperature: float = setting(0.2, "logits are cosines divided by this; lower is sharper")
    logq_correction: bool = setting(True, "correct in-batch negatives for popular items being "
                                    "sampled more often (subtract log sampling probability)")
    learning_rate: float = setting(0.1, "Adagrad learning rate")
    epochs: int = setting(10, "passes over the training split")
    batch_size: int = setting(1024, "interactions per batch (also the in-batch negatives)")
    seed: int = setting(42, "seed for initialisation and shuffling")
    refit_on_all: bool = setting(True, "after the candidate the gate judges is trained on the "
                                 "train split, train the pushed model again on train + eval "
                                 "with the same settings (false: push the candidate itself)")

    def __post_init__(self):
        positive = ("embedding_dim", "temperature", "learning_rate", "epochs", "batch_size")
        bad = [f"{name}={getattr(self, name)}" for name in positive if getattr(self, name) <= 0]
        bad += [f"{name}={getattr(self, name)}" for name in ("query_layers", "candidate_layers")
                if any(units <= 0 for units in getattr(self, name))]
        if bad:
            raise ValueError(f"model settings must be positive: {', '.join(bad)}")
