"""docker/: the Dockerfiles lint clean with hadolint and run as non-root, the compose file binds
only to loopback, and the UI image's pins agree with the project's lock.

No Docker engine is needed: these are static checks. hadolint comes from .venv-tools
(requirements/tools.txt; `make install` builds it).
"""

import re
import subprocess
from pathlib import Path

import pytest

from lint_tools import tool
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DOCKERFILES = ["ui.Dockerfile", "serving.Dockerfile"]
SERVING_IMAGE = "tensorflow/serving:2.16.1"


def instructions(dockerfile: str):
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = (DOCKER / dockerfile).read_text()
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
            for line in lines]


def after_last_from(dockerfile: str):
    found = instructions(dockerfile)
    last = max(i for i, (op, _) in enumerate(found) if op == "FROM")
    return found[last:]


def pins(path: Path):
    """package name (normalised) -> pinned version, from a requirements file."""
    versions = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)", line)
        if match:
            versions[re.sub(r"[-_.]+", "-", match.group(1).lower())] = match.group(3)
    return versions


# --- Dockerfiles ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_is_clean(dockerfile):
    result = subprocess.run([tool("hadolint"), "--no-color", str(DOCKER / dockerfile)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_ignores_give_a_reason(dockerfile):
    for line in (DOCKER / dockerfile).read_text().splitlines():
        if "hadolint ignore=" in line:
            rules = line.split("hadolint ignore=", 1)[1].split(None, 1)
            assert len(rules) == 2 and len(rules[1].strip()) > 10, f"no reason given: {line}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_image_runs_as_a_non_root_user(dockerfile):
    users = [args.strip() for op, args in after_last_from(dockerfile) if op == "USER"]
    assert users, f"{dockerfile} never switches away from root"
    user, _, group = users[-1].partition(":")
    assert user not in ("root", "0") and group not in ("root", "0")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without an /etc/passwd lookup.
    assert user.isdigit() and int(user) >= 10000


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_image_has_a_pinned_base_and_a_healthcheck(dockerfile):
    found = instructions(dockerfile)
    bases = [args.split()[0] for op, args in found if op == "FROM"]
    for base in bases:
        name, _, tag = base.split("@")[0].rpartition(":")
        assert name and tag and tag != "latest", base
    assert any(op == "HEALTHCHECK" for op, _ in after_last_from(dockerfile))


def test_ui_image_runs_streamlit_on_8080():
    found = after_last_from("ui.Dockerfile")
    assert found[0][1].startswith("python:3.11")
    cmd = [args for op, args in found if op == "CMD"][-1]
    assert '"streamlit", "run", "ui/app.py"' in cmd
    assert "--server.port=8080" in cmd and "--server.address=0.0.0.0" in cmd
    assert ("EXPOSE", "8080") in found
    healthcheck = [args for op, args in found if op == "HEALTHCHECK"][-1]
    assert "8080/_stcore/health" in healthcheck
    # No TensorFlow in the UI image: it talks REST.
    assert not any("tensorflow" in args for op, args in found if op == "RUN")


def test_serving_image_bakes_the_towergraph_model():
    found = after_last_from("serving.Dockerfile")
    assert found[0][1] == SERVING_IMAGE
    copies = [args.split() for op, args in found if op == "COPY"]
    assert ["work/run/serving/towergraph", "/models/towergraph"] in copies
    # The monitoring config has one copy, k8s/base's, shared with the ConfigMap.
    assert ["k8s/base/monitoring.config", "/etc/tf-serving/monitoring.config"] in copies
    env = " ".join(args for op, args in found if op == "ENV")
    assert "MODEL_NAME=towergraph" in env and "MODEL_BASE_PATH=/models" in env
    assert "--monitoring_config_file=/etc/tf-serving/monitoring.config" in \
        [args for op, args in found if op == "CMD"][-1]


def test_serving_image_matches_the_kubernetes_image():
    deployment = (REPO / "k8s" / "base" / "serving-deployment.yaml").read_text()
    assert f"image: {SERVING_IMAGE}" in deployment
    assert f"image: {SERVING_IMAGE}" in (DOCKER / "docker-compose.yaml").read_text()


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_copied_sources_exist_and_pass_the_dockerignore(dockerfile):
    """Build context is the repo root; each COPY source must exist and not be ignored."""
    ignore = (DOCKER / f"{dockerfile}.dockerignore").read_text().splitlines()
    assert "*" in ignore, "the context should start from nothing"
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for op, args in instructions(dockerfile):
        if op != "COPY" or args.startswith("--from"):
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for source in sources:
            source = source.rstrip("/")
            assert any(source == a or source.startswith(a + "/") for a in allowed), \
                f"{source} is excluded by {dockerfile}.dockerignore"
            if not source.startswith("work/"):   # work/ appears after `make demo`
                assert (REPO / source).exists(), source


def test_ui_requirements_are_pinned_and_match_the_lock():
    path = DOCKER / "ui-requirements.txt"
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    lines = [line for line in lines if line]
    ui = pins(path)
    assert len(ui) == len(lines), "every requirement must be pinned with =="
    assert {"streamlit", "requests", "networkx", "pyvis", "pandas", "numpy"} <= set(ui)
    assert not any(name.startswith("tensorflow") for name in ui)
    lock = pins(REPO / "requirements" / "lock.txt")
    drift = {name: (version, lock[name]) for name, version in ui.items()
             if name in lock and lock[name] != version}
    assert not drift, f"ui-requirements.txt (left) disagrees with requirements/lock.txt: {drift}"


# --- docker compose ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DOCKER / "docker-compose.yaml").read_text())


def published(service):
    """(host_ip, host_port, container_port) of each published port, short or long syntax."""
    for port in service.get("ports", []):
        if isinstance(port, dict):
            yield port.get("host_ip", ""), str(port.get("published", "")), str(port["target"])
        else:
            parts = str(port).split(":")
            if len(parts) == 3:
                yield parts[0], parts[1], parts[2]
            elif len(parts) == 2:
                yield "", parts[0], parts[1]
            else:
                yield "", "", parts[0]


def test_compose_runs_serving_and_ui(compose):
    services = compose["services"]
    assert set(services) == {"tf-serving", "ui"}
    serving, ui = services["tf-serving"], services["ui"]
    assert serving["image"] == SERVING_IMAGE or "serving.Dockerfile" in str(serving.get("build"))
    assert serving["environment"]["MODEL_NAME"] == "towergraph"
    assert ui["environment"]["TOWERGRAPH_SERVER"] == "http://tf-serving:8501"
    assert ui["build"]["dockerfile"] == "docker/ui.Dockerfile"
    assert (DOCKER / ui["build"]["context"] / ui["build"]["dockerfile"]).resolve() == \
        DOCKER / "ui.Dockerfile"
    assert ui["depends_on"]["tf-serving"]["condition"] == "service_healthy"
    for volume in serving["volumes"]:
        source = volume.split(":")[0]
        if not source.startswith("../work/"):   # work/ appears after `make demo`
            assert (DOCKER / source).exists(), source


def test_compose_binds_ports_to_loopback_only(compose):
    serving_ports = list(published(compose["services"]["tf-serving"]))
    assert {c for _, _, c in serving_ports} == {"8500", "8501"}
    for name, service in compose["services"].items():
        for host_ip, _host_port, container_port in published(service):
            assert host_ip == "127.0.0.1", f"{name} publishes {container_port} on all interfaces"


def test_compose_containers_are_locked_down(compose):
    for name, service in compose["services"].items():
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
    user = compose["services"]["tf-serving"]["user"].split(":")[0]
    assert user.isdigit() and int(user) != 0
