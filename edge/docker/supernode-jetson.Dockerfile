# BLOSSOM SuperNode for a Jetson Orin: CUDA torch from an L4T PyTorch base image
# with Python >= 3.11. JetPack 6 itself ships Python 3.10, which Flower >= 1.31
# no longer supports, so the default base is a jetson-containers image built on
# Ubuntu 24.04 (Python 3.12) for L4T r36.4 (JetPack 6.1/6.2). On JetPack 7, pass
# a JetPack 7 PyTorch base and its index. Build on the Jetson, from the repository
# root:
#   docker build -f edge/docker/supernode-jetson.Dockerfile -t blossom-supernode-jetson .
ARG BASE_IMAGE=dustynv/pytorch:2.7-r36.4.0-cu128-24.04
FROM ${BASE_IMAGE}

ARG FLWR_VERSION=1.42.0
# NVIDIA's Jetson index (Jetson AI Lab): onnxruntime-gpu and CUDA wheels for the
# base's JetPack and CUDA, and a mirror of everything else. jetson-containers
# images point pip at this index already; naming it here keeps a moved index
# one --build-arg away.
ARG JETSON_INDEX_URL=https://pypi.jetson-ai-lab.io/jp6/cu128

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_INDEX_URL=${JETSON_INDEX_URL} \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    PYTHONUNBUFFERED=1 \
    FLWR_TELEMETRY_ENABLED=0
# (FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION is read by flower-superlink
# only: a SuperNode installs nothing without --allow-runtime-dependency-installation)

# Fail the build early, with the reason, on a base that cannot run Flower or
# has no CUDA torch (a CPU build would train on the CPU without a word).
RUN python3 -c "import sys; sys.exit(None if sys.version_info >= (3, 11) else \
'BLOSSOM needs Python >= 3.11 (Flower >= 1.31) but ' + sys.version.split()[0] + \
' is in this base: use a jetson-containers tag ending in -24.04, or JetPack 7')" \
    && python3 -c "import sys, torch; sys.exit(None if torch.version.cuda else \
'torch ' + torch.__version__ + ' in this base is not a CUDA build')"

# Same user id as Flower's images (mounted credentials: chown 49999); the video
# group opens the Jetson's GPU device nodes.
RUN useradd --uid 49999 --create-home --home-dir /app --groups video --shell /bin/bash app \
    && mkdir -p /app/state /app/models /app/data \
    && chown -R app:app /app
WORKDIR /app

# Dependencies first (a layer that survives code changes), the app last. The
# base's CUDA torch stays (constraint); onnxruntime-gpu replaces onnxruntime
# (both install the same `onnxruntime` module).
COPY pyproject.toml README.md edge/docker/app-requirements.py /opt/blossom/
RUN python3 -m pip list --format=freeze | grep -iE '^(torch|torchvision)==' > /opt/constraints.txt \
    && python3 /opt/blossom/app-requirements.py /opt/blossom/pyproject.toml \
        --except flwr torch torchvision onnxruntime > /opt/requirements.txt \
    && python3 -m pip install --constraint /opt/constraints.txt \
        "flwr==${FLWR_VERSION}" "onnxruntime-gpu>=1.20" --requirement /opt/requirements.txt \
    && python3 -c "import onnxruntime as ort; \
assert 'CUDAExecutionProvider' in ort.get_available_providers(), ort.get_available_providers()"
COPY blossom_app /opt/blossom/blossom_app
RUN python3 -m pip install --no-deps /opt/blossom

USER 49999
ENV HOME=/app
ENTRYPOINT ["flower-supernode"]
