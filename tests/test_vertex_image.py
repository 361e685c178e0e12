"""The pipeline image (root Dockerfile, .dockerignore, cloudbuild.yaml), checked statically (no
Docker engine or Cloud Build here): hadolint clean, tzdata installed non-interactively with TZ
set (TensorFlow's absl::LoadTimeZone crashes without it), the lock installed as the Makefile
does, a non-root user, Beam's Dataflow launcher from the lock's Beam version, and Cloud Build
pushing the image that configs/vertex.yaml names.
"""

import fnmatch
import json
import re
import subprocess
from pathlib import Path


from lint_tools import tool
import yaml

from pipeline.vertex_config import load_vertex_config
from test_vertex_config import no_cloud_environment  # noqa: F401  (autouse fixture)

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"


def instructions(text: str):
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    found, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not current and not stripped):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        line = current + stripped
        current = ""
        op, _, args = line.partition(" ")
        found.append((op.upper(), args.strip()))
    return found


def final_stage():
    found = instructions(DOCKERFILE.read_text())
    last = max(i for i, (op, _) in enumerate(found) if op == "FROM")
    return found[last:]


def runs():
    return [args for op, args in final_stage() if op == "RUN"]


def lock_pin(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)", (REPO / "requirements" / "lock.txt")
                      .read_text(), re.MULTILINE)
    assert match, package
    return match.group(1)


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("hadolint"), "--no-color", str(path)], capture_output=True,
                          text=True, timeout=120)


def test_hadolint_is_clean():
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_checkov_passes_the_dockerfile():
    """As tests/test_k8s.py checks docker/*.Dockerfile (offline: --skip-download)."""
    result = subprocess.run([tool("checkov"), "-f", str(DOCKERFILE), "--framework", "dockerfile",
                             "--compact", "--quiet", "--skip-download", "-o", "json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["summary"]["resource_count"] == 1 and report["summary"]["parsing_errors"] == 0
    assert report["results"]["failed_checks"] == []


def test_every_hadolint_ignore_has_a_reason_and_is_needed(tmp_path):
    lines = DOCKERFILE.read_text().splitlines()
    ignored = set()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            rules = line.split("hadolint ignore=", 1)[1].strip()
            assert re.fullmatch(r"DL\d{4}(,DL\d{4})*", rules), line  # hadolint reads no more
            reason = lines[number - 1].strip()
            assert reason.startswith("#") and len(reason) > 20, f"no reason above: {line}"
            ignored.update(rules.split(","))
    stripped = tmp_path / "Dockerfile"
    stripped.write_text("\n".join(line for line in lines if "hadolint ignore=" not in line))
    reported = set(re.findall(r"\b(DL\d{4})\b", hadolint(stripped).stdout))
    assert ignored <= reported, f"stale ignores: {ignored - reported}"


def test_base_images_are_pinned():
    bases = [args.split()[0] for op, args in instructions(DOCKERFILE.read_text()) if op == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", bases[-1]), bases[-1]
    # Dataflow's worker launcher comes from Beam's image of the lock's Beam, for Python 3.11.
    assert bases[0] == f"apache/beam_python3.11_sdk:{lock_pin('apache-beam')}"


def test_tzdata_is_installed_non_interactively_with_tz_set():
    text = DOCKERFILE.read_text()
    assert re.search(r"^(ARG|ENV) DEBIAN_FRONTEND=noninteractive$", text, re.MULTILINE)
    envs = " ".join(args for op, args in final_stage() if op == "ENV")
    assert "TZ=Etc/UTC" in envs
    tz_run = next(run for run in runs() if "tzdata" in run)
    assert "apt-get install -y --no-install-recommends tzdata" in tz_run
    assert 'ln -snf "/usr/share/zoneinfo/$TZ" /etc/localtime' in tz_run
    assert "rm -rf /var/lib/apt/lists/*" in tz_run


def test_locked_dependencies_then_the_project_without_deps():
    found = runs()
    lock = [i for i, run in enumerate(found)
            if "pip install --no-cache-dir --no-deps --ignore-requires-python "
               "-r requirements/lock.txt" in run]
    project = [i for i, run in enumerate(found)
               if re.search(r"pip install --no-cache-dir --no-deps --no-build-isolation \.( |$)",
                            run)]
    assert lock and project and lock[0] < project[0], found
    # The compiler for the lock's one C++ sdist does not stay in the image.
    assert "apt-get purge -y --auto-remove g++" in found[lock[0]]


def test_environment_for_tensorflow_and_beam():
    envs = " ".join(args for op, args in final_stage() if op == "ENV")
    assert "TF_USE_LEGACY_KERAS=1" in envs
    assert "RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1" in envs
    stage = final_stage()
    assert ("COPY", "--from=beam /opt/apache/beam /opt/apache/beam") in stage
    assert stage[-1] == ("ENTRYPOINT", '["/opt/apache/beam/boot"]')


def test_runs_as_a_non_root_user():
    stage = final_stage()
    users = [args for op, args in stage if op == "USER"]
    assert users, "the image never leaves root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) >= 10000 and group == user
    assert any(f"useradd --uid {user} " in run for run in runs())
    # Nothing after USER needs root.
    last_user = max(i for i, (op, _) in enumerate(stage) if op == "USER")
    assert not any(op == "RUN" for op, _ in stage[last_user:])


def dockerignore_patterns():
    return [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns) -> bool:
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
        if pattern.startswith("**/") and any(fnmatch.fnmatch(part, pattern[3:])
                                             for part in parts):
            return True
    return False


def test_dockerignore_keeps_the_big_and_local_things_out():
    patterns = dockerignore_patterns()
    for path in [".venv", ".venv-tools", "work", ".git", ".pytest_cache",
                 "tests/.pytest_cache", "pipeline/__pycache__", "trainer/x.pyc"]:
        assert ignored(path, patterns), path


def test_dockerignore_keeps_what_the_dockerfile_copies():
    patterns = dockerignore_patterns()
    for op, args in final_stage():
        if op == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert not ignored(source, patterns), source
                assert (REPO / source).exists(), source


def test_cloud_build_pushes_the_image_configs_vertex_yaml_names():
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    image = "${_REGION}-docker.pkg.dev/${PROJECT_ID}/${_REPOSITORY}/${_IMAGE}:${_TAG}"
    assert build["images"] == [image]
    step = build["steps"][0]
    assert step["name"] == "gcr.io/cloud-builders/docker"
    assert step["args"] == ["build", f"--tag={image}", "--file=Dockerfile", "."]
    assert "DOCKER_BUILDKIT=1" in step["env"]
    substitutions = build["substitutions"]
    assert set(substitutions) == {"_REGION", "_REPOSITORY", "_IMAGE", "_TAG"}
    assert all(name.startswith("_") for name in substitutions)  # Cloud Build's rule
    pushed = image.replace("${PROJECT_ID}", "my-project")
    for name, value in substitutions.items():
        pushed = pushed.replace("${" + name + "}", value)
    config = load_vertex_config(str(REPO / "configs" / "vertex.yaml"), environ={
        "GOOGLE_CLOUD_PROJECT": "my-project", "TOWERGRAPH_BUCKET": "my-bucket"})
    assert pushed == config.image
