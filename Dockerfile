# syntax=docker/dockerfile:1
# The pipeline image: every Vertex AI Pipelines step, the Trainer's Vertex AI custom job and,
# with dataflow.enabled, the Dataflow workers run the project's locked TFX stack from it.
#
# Build context is the repository root (.dockerignore keeps .venv, work/ and .git out):
#   gcloud builds submit --config cloudbuild.yaml .     (README, "Run on Google Cloud")
#   docker build -t towergraph-pipeline:0.1.0 .
#
# Dataflow starts custom containers with Beam's SDK harness launcher (/opt/apache/beam/boot),
# taken from Beam's image for the same Beam (requirements/lock.txt) and Python versions.
FROM apache/beam_python3.11_sdk:2.74.0 AS beam

FROM python:3.11.14-slim-bookworm

ARG DEBIAN_FRONTEND=noninteractive
# TF_USE_LEGACY_KERAS: TFRS needs Keras 2 (towergraph/tf_env.py sets it too, this covers any
# process that imports TensorFlow first). RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT: Beam's boot
# would otherwise run workers in a fresh virtualenv without the packages installed here.
ENV TZ=Etc/UTC \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    TF_USE_LEGACY_KERAS=1 \
    RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1

# TensorFlow's absl::LoadTimeZone aborts the process when /usr/share/zoneinfo is missing, as it
# is in Debian slim images: install tzdata without its interactive prompt, and set the zone.
# Not version-pinned: Debian replaces tzdata in point releases; the base image tag pins those.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tzdata \
    && ln -snf "/usr/share/zoneinfo/$TZ" /etc/localtime \
    && echo "$TZ" > /etc/timezone \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# The locked stack, installed as the Makefile does: the TFX 1.16 stack declares
# Requires-Python <3.11 but runs on 3.11 (README, "Install notes"). One pin (pyfarmhash) is a
# C++ sdist, so g++ is there for the build only and removed in the same layer.
COPY requirements/lock.txt requirements/lock.txt
# Not version-pinned: g++ never reaches the image; the base image tag pins Debian's release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && pip install --no-cache-dir --no-deps --ignore-requires-python -r requirements/lock.txt \
    && apt-get purge -y --auto-remove g++ \
    && rm -rf /var/lib/apt/lists/*

# The project itself, without dependencies (setuptools comes from the lock).
COPY setup.py README.md ./
COPY towergraph/ towergraph/
COPY pipeline/ pipeline/
COPY trainer/ trainer/
COPY serving/ serving/
COPY ui/ ui/
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && rm -rf build ./*.egg-info \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin towergraph

COPY --from=beam /opt/apache/beam /opt/apache/beam

USER 10001:10001

# A batch image: Vertex AI and Dataflow judge its containers by their exit status.
HEALTHCHECK NONE

# Dataflow runs the image as is; Vertex AI Pipelines and custom jobs replace the entrypoint
# with the command TFX compiles into the pipeline spec (python -m tfx...).
ENTRYPOINT ["/opt/apache/beam/boot"]
