# BLOSSOM SuperNode for a Raspberry Pi 4/5 (64-bit OS, arm64): Flower's SuperNode
# image plus the app's ClientApp dependencies, with CPU-only torch and onnxruntime.
# Also runs on amd64 (the compose rehearsal uses it). Build from the repository
# root, on the Pi or with buildx (--platform linux/arm64):
#   docker build -f edge/docker/supernode-pi.Dockerfile -t blossom-supernode-pi .
ARG FLWR_VERSION=1.42.0
ARG PYTHON_TAG=py3.12-ubuntu24.04
FROM flwr/supernode:${FLWR_VERSION}-${PYTHON_TAG}

# The PyTorch CPU wheel index: torch from the default index on arm64 pulls CUDA
# packages a Pi cannot use.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLWR_TELEMETRY_ENABLED=0
# (FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION is read by flower-superlink
# only: a SuperNode installs nothing without --allow-runtime-dependency-installation)

WORKDIR /app
# Dependencies first (a layer that survives code changes), the app last.
# onnxruntime 1.21.0 crashes on the Pi 4: the constraint keeps it out.
COPY --chown=app:app pyproject.toml README.md edge/docker/app-requirements.py /app/blossom/
RUN pip install --index-url "${TORCH_INDEX_URL}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
    && pip list --format=freeze | grep -iE '^(torch|torchvision)==' > /app/constraints.txt \
    && echo "onnxruntime!=1.21.0" >> /app/constraints.txt \
    && python /app/blossom/app-requirements.py /app/blossom/pyproject.toml \
        --except flwr torch torchvision > /app/requirements.txt \
    && pip install --constraint /app/constraints.txt --requirement /app/requirements.txt \
    && python -c "import onnxruntime, torch; assert not torch.version.cuda" \
    && mkdir -p /app/state /app/models /app/data
COPY --chown=app:app blossom_app /app/blossom/blossom_app
RUN pip install --no-deps /app/blossom

ENTRYPOINT ["flower-supernode"]
