# syntax=docker/dockerfile:1
# TF Serving with the trained model baked in: a self-contained image of one model release.
# (k8s/ runs the plain tensorflow/serving image and mounts the model instead.)
#
# Build context is the repository root, after `make demo` has pushed a model:
#   docker build -f docker/serving.Dockerfile -t towergraph-serving:<version> .
#   docker run --rm -p 127.0.0.1:8500:8500 -p 127.0.0.1:8501:8501 towergraph-serving:<version>
# work/run/serving/towergraph holds one directory per pushed version; all are copied and
# TF Serving serves the newest. docker/serving.Dockerfile.dockerignore sends only those files.
FROM tensorflow/serving:2.16.1

# The image's entrypoint (/usr/bin/tf_serving_entrypoint.sh) serves
# ${MODEL_BASE_PATH}/${MODEL_NAME} on ports 8500 (gRPC) and 8501 (REST) and appends CMD's flags.
ENV MODEL_NAME=towergraph \
    MODEL_BASE_PATH=/models

# Prometheus metrics on the REST port at /monitoring/prometheus/metrics; the one copy of this
# file lives in k8s/base, whose ConfigMap uses it too.
COPY k8s/base/monitoring.config /etc/tf-serving/monitoring.config
COPY work/run/serving/towergraph /models/towergraph

# Any non-root uid works: TF Serving only reads the model and listens on unprivileged ports.
USER 10001:10001
EXPOSE 8500 8501

# The image has neither curl nor Python: bash's /dev/tcp asks the REST API for the model's
# status and the check passes once a version is AVAILABLE.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8501 && printf 'GET /v1/models/towergraph HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q AVAILABLE <&3"]

CMD ["--monitoring_config_file=/etc/tf-serving/monitoring.config"]
