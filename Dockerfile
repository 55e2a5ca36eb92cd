# The linkedin-posts image for KubeRay's head and worker pods (deploy/kubernetes/rayservice.yaml).
# Its install step is the project's own `make install`, the same as on a developer's machine.
#
#   docker build -t linkedin-posts:0.1.0 .
#   docker build --build-arg TORCH_PIP_ARGS="--index-url <PyTorch's CPU wheel index>" -t linkedin-posts:0.1.0 .
#   docker build --build-arg VARIANT=gpu -t linkedin-posts:0.1.0-gpu .
#
# torch==2.13.0 from PyPI is the CUDA build on Linux x86_64: the GPU variant needs nothing more, and
# it runs on CPU too; TORCH_PIP_ARGS points pip at a CPU-only wheel for a smaller CPU image.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ARG VARIANT=cpu
ARG TORCH_PIP_ARGS=""
# make for the install; wget for KubeRay's probes; redis-tools to reach the L2 Redis by hand.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make wget redis-tools \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . /app
RUN make install PYTHON=python3 TORCH_PIP_ARGS="${TORCH_PIP_ARGS}" \
 && rm -rf /root/.cache/pip
# `ray start` (KubeRay), `serve` and the replicas all run from the project's environment; the
# proxy guard is installed in every node's Serve proxy.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONPATH=/app \
    RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=deployments.edge.proxy_guard:middlewares \
    LINKEDIN_POSTS_IMAGE_VARIANT=${VARIANT}
# The GGUF file is converted to transformers weights once, at build time, not at every pod start.
RUN python -c "from deployments.engine.model_loader import load_model; from deployments.settings import ModelSettings; load_model(ModelSettings(device='cpu'))"
EXPOSE 8000 8265 6379
