# syntax=docker/dockerfile:1
# recserve image: one image for the api, the one-shot trainer and the precompute job.
#
# Two stages so that pip, build caches and setuptools never reach the final image: `build`
# assembles a self-contained virtualenv in /opt/venv, `runtime` copies only that venv onto a slim
# Python base and runs it as an unprivileged user.

ARG PYTHON_VERSION=3.11
# Both stages start from this image. Any Debian bookworm image with python${PYTHON_VERSION} and its
# venv module as `python` will do: `make test-deploy` builds one from a debootstrapped Debian
# (docker/test/Dockerfile.python) because no image registry is reachable there.
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build

# The default PyPI torch wheel for Linux drags in ~2 GB of CUDA libraries; the CPU index has the
# same version without them. requirements.lock pins that build (torch==2.13.0+cpu), which only
# the CPU index has.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# wheelhouse/ (in the build context, empty in git) holds wheels pip should find without an index,
# e.g. the CPU torch wheel when download.pytorch.org is out of reach (make test-deploy copies it
# there); pip prefers it to an index copy of the same version.
COPY wheelhouse/ /wheelhouse/
# A CA bundle pip should trust, for networks that intercept TLS (e.g. a bundle put in wheelhouse/
# and --build-arg PIP_CERT=/wheelhouse/ca-certificates.crt). Unset: pip's own bundle.
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_FIND_LINKS=/wheelhouse \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

# Dependencies in their own layer, from the lock alone, so editing source does not reinstall them.
# requirements.lock (`make lock`) pins every package with its sha256 hashes for Python 3.11 on
# x86_64: two builds of one commit install the same bytes, or fail. --no-deps: nothing outside
# the lock gets in.
WORKDIR /src
COPY requirements.lock ./
RUN pip install --no-deps --require-hashes --extra-index-url "${TORCH_INDEX_URL}" -r requirements.lock

# The project itself (non-editable; .dockerignore lets only pyproject and the packages in).
COPY . ./
RUN pip install --no-deps . \
    && python -c "import recserve.cli, service.app, training.pipeline, torch; assert not torch.cuda.is_available()"

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

# libgomp: the OpenMP runtime torch and faiss use for their CPU kernels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 recserve \
    && useradd --system --uid 10001 --gid recserve --home-dir /app --shell /usr/sbin/nologin recserve \
    && mkdir -p /app /store \
    && chown recserve:recserve /app /store

COPY --from=build /opt/venv /opt/venv

# /store is owned by the service user above, so a named volume mounted there starts writable for it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RECSERVE_STORE_URI=/store \
    RECSERVE_HOST=0.0.0.0 \
    RECSERVE_PORT=8000

WORKDIR /app
USER recserve:recserve
EXPOSE 8000

# Healthy = a model is loaded and being served (/readyz is 503 until then). No curl in the slim
# image, so Python's urllib does the probe; any exception or non-2xx exits non-zero.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('RECSERVE_PORT', '8000'), timeout=2)"]

# One uvicorn process per container: its /metrics is then the whole truth for this container
# (prometheus-client needs multiprocess mode otherwise). Scale with replicas, not --workers.
CMD ["recserve", "serve"]
