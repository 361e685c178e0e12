"""The lint and validation tools (checkov, hadolint, kubectl, kubernetes-validate).

They live in their own venv, .venv-tools, because checkov's dependencies clash with the TFX lock.
"""

from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / ".venv-tools" / "bin"


def tool(name: str) -> str:
    """Path of a tool; fails (never skips) when `make install` has not built .venv-tools."""
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make install`, which builds .venv-tools from "
                    f"requirements/tools.txt", pytrace=False)
    return str(path)
