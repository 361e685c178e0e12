"""The README's settings table lists every setting of the config classes, with its default.

The flags of `towergraph run` are generated from the same classes, so this keeps the three
(YAML file, flags, README) from drifting apart.
"""

import re
from pathlib import Path

import pytest

from pipeline.config import PipelineConfig
from trainer.config import ModelConfig
from trainer.settings import settings

README = Path(__file__).resolve().parents[1] / "README.md"


def _rows():
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `([a-z_.]+)` \| `([^`]*)` \|", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def _shown(default):
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, tuple):
        return "[" + ", ".join(map(str, default)) + "]"
    return str(default)


SETTINGS = ([(name, default) for name, default, _ in settings(PipelineConfig) if name != "model"]
            + [(f"model.{name}", default) for name, default, _ in settings(ModelConfig)])


@pytest.mark.parametrize("name, default", SETTINGS, ids=[name for name, _ in SETTINGS])
def test_every_setting_is_in_the_readme_with_its_default(name, default):
    rows = _rows()
    assert name in rows, f"README's settings table has no row for `{name}`"
    if not rows[name].startswith("<"):  # paths shown as <output_dir>/... are derived defaults
        assert rows[name] == _shown(default), f"`{name}`: README says {rows[name]!r}"
