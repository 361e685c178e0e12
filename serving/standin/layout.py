"""How versions lie on disk, as TF Serving reads them: `<model_base_path>/<version>/saved_model.pb`.

Standard library only, so the `serve` command can validate its arguments (and hand over to a real
tensorflow_model_server) without importing TensorFlow.
"""

import os
from pathlib import Path
from typing import Dict, Tuple

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


class LayoutError(ValueError):
    """The directory holds no model versions."""


def version_dirs(base_path) -> Dict[int, Path]:
    """Integer-named subdirectories of `base_path` (TF Serving's version directories)."""
    base = Path(base_path)
    versions = {}
    try:
        entries = list(os.scandir(base))
    except OSError:
        return {}
    for entry in entries:
        if entry.name.isdigit() and entry.is_dir():
            versions[int(entry.name)] = base / entry.name
    return versions


def has_saved_model(version_path) -> bool:
    return any(os.path.isfile(os.path.join(version_path, name)) for name in SAVED_MODEL_FILES)


def fingerprint(version_path) -> Tuple:
    """Every file under a version directory with its size and mtime: changes while it is written."""
    entries = []
    for root, _, files in os.walk(version_path):
        for name in files:
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue  # removed while we looked
            entries.append((os.path.relpath(path, version_path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def find_model_base_path(model_dir, model_name: str) -> Path:
    """`model_dir` is a serving dir (`<model_dir>/<model_name>/<version>/`) or a model base path
    (`<model_dir>/<version>/`); returns the model base path, or raises LayoutError saying why not.
    """
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise LayoutError(f"--model-dir {model_dir} is not a directory")
    nested = model_dir / model_name
    if version_dirs(nested):
        return nested.resolve()
    if version_dirs(model_dir):
        return model_dir.resolve()
    raise LayoutError(
        f"no model versions under {model_dir}: expected integer-named version directories "
        f"(like 1/ holding saved_model.pb) in {nested} (a serving dir) or in {model_dir} "
        f"(a model base path)")
