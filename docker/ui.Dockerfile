# syntax=docker/dockerfile:1
# The TowerGraph UI: the Streamlit graph explorer (ui/app.py), talking to TF Serving over REST.
#
# Build context is the repository root (the UI imports the ui/ and serving/ packages and towergraph's constants):
#   docker build -f docker/ui.Dockerfile -t towergraph-ui:0.1.0 .
#   docker run --rm -p 127.0.0.1:8080:8080 -e TOWERGRAPH_SERVER=http://host:8501 towergraph-ui:0.1.0
# docker/ui.Dockerfile.dockerignore keeps the context to the files copied below.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true \
    TOWERGRAPH_SERVER=http://tf-serving:8501

WORKDIR /app

# Only the UI's packages (all pinned, see the file): no TensorFlow, the UI uses REST.
COPY docker/ui-requirements.txt /tmp/ui-requirements.txt
RUN pip install --no-cache-dir -r /tmp/ui-requirements.txt \
    && rm /tmp/ui-requirements.txt \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin towergraph

# The code, importable from /app (PYTHONPATH) without installing setup.py, whose
# install_requires would pull in the whole TFX stack. Of the towergraph package only its two
# leaf modules come (constants, and tf_env which sets environment variables); no trainer code.
COPY setup.py ./
COPY towergraph/__init__.py towergraph/constants.py towergraph/tf_env.py towergraph/
COPY serving/ serving/
COPY ui/ ui/

USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/_stcore/health', timeout=4)"]

# Static serving: vis-network from ui/static/ once, not inside every rerun's component.
CMD ["streamlit", "run", "ui/app.py", "--server.port=8080", "--server.address=0.0.0.0", \
     "--server.enableStaticServing=true"]
