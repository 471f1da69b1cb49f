# BLOSSOM SuperLink: Flower's SuperLink image plus the app. The ServerApp runs
# inside the SuperLink container (subprocess isolation), so the app's Python
# dependencies live here; torch is the CPU build (the server only aggregates).
# Build from the repository root:
#   docker build -f edge/docker/superlink.Dockerfile -t blossom-superlink .
ARG FLWR_VERSION=1.42.0
ARG PYTHON_TAG=py3.12-ubuntu24.04
FROM flwr/superlink:${FLWR_VERSION}-${PYTHON_TAG}

# The PyTorch CPU wheel index: CPU-only torch on amd64 and arm64 alike.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLWR_TELEMETRY_ENABLED=0 \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 \
    BLOSSOM_RESULTS_DIR=/app/results

WORKDIR /app
# Dependencies first (a layer that survives code changes), the app last.
COPY --chown=app:app pyproject.toml README.md edge/docker/app-requirements.py /app/blossom/
RUN pip install --index-url "${TORCH_INDEX_URL}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
    && pip list --format=freeze | grep -iE '^(torch|torchvision)==' > /app/constraints.txt \
    && python /app/blossom/app-requirements.py /app/blossom/pyproject.toml \
        --except flwr torch torchvision > /app/requirements.txt \
    && pip install --constraint /app/constraints.txt --requirement /app/requirements.txt \
    && mkdir -p /app/results /app/state
COPY --chown=app:app blossom_app /app/blossom/blossom_app
RUN pip install --no-deps /app/blossom

EXPOSE 9093
ENTRYPOINT ["flower-superlink"]
