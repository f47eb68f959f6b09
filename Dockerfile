# syntax=docker/dockerfile:1
# The provisioner image: `provisioner worker` by default, `provisioner api` with the command `api` (Procfile).
#
#   docker build -t registry.example.com/kucoin-nd-provisioner:0.1.0 .
#   docker run --rm --read-only --tmpfs /tmp registry.example.com/kucoin-nd-provisioner:0.1.0 --help
#
# Supply chain (deploy/README.md, "Container image"):
# - The base is pinned by tag AND digest (the multi-arch index of python:3.11.15-slim-bookworm): the tag says what
#   it is, the digest makes it so. Move both together; `docker buildx imagetools inspect python:3.11-slim-bookworm`
#   prints the current digest.
# - Every third-party file installed is checked against a sha256: the dependencies from requirements/runtime.lock
#   (`--require-hashes --no-deps`, wheels only: no setup.py of anyone's runs here), and the build backend below.
#   The project itself is built from this checkout with `--no-deps`, so nothing outside the lock can come in.
# - The image runs as uid/gid 10001 (the Kubernetes manifests' runAsUser), with a read-only root filesystem: it
#   writes only under /tmp (HOME, the default metrics and state folders) and where the deployment mounts volumes.

FROM python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3 AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

# The runtime environment: the locked dependencies only, every file hash-checked.
COPY requirements/runtime.lock /build/runtime.lock
RUN python -m venv /opt/provisioner \
 && /opt/provisioner/bin/pip install --require-hashes --no-deps --only-binary=:all: -r /build/runtime.lock

# The build backend (pyproject.toml's [build-system] requires setuptools>=68), pinned by version and hash in a
# venv of its own that never reaches the final image. tests/deploy/test_dockerfile.py keeps the pin within the
# range pyproject.toml asks for.
RUN python -m venv /build/backend \
 && printf '%s\n' \
      'setuptools==80.9.0 --hash=sha256:062d34222ad13e0cc312a4c02d73f059e86a4acbfbdea8f8f76b28c99f306922' \
      >/build/backend.lock \
 && /build/backend/bin/pip install --require-hashes --no-deps --only-binary=:all: -r /build/backend.lock

# The project: only what the wheel is made of (pyproject.toml's packages and its readme).
COPY pyproject.toml README.md /build/src/
COPY api /build/src/api
COPY cli /build/src/cli
COPY handlers /build/src/handlers
COPY sandbox /build/src/sandbox
COPY worker /build/src/worker
RUN /build/backend/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /build/dist /build/src \
 && /opt/provisioner/bin/pip install --no-deps /build/dist/*.whl \
 && /opt/provisioner/bin/pip uninstall --yes pip setuptools \
 && /opt/provisioner/bin/python -m compileall -q /opt/provisioner \
 && /opt/provisioner/bin/provisioner --help >/dev/null


FROM python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3 AS runtime

LABEL org.opencontainers.image.title="kucoin-nd-provisioner" \
      org.opencontainers.image.description="Exactly-once provisioning worker for KuCoin's ND Broker program" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.15-slim-bookworm"

# A fixed numeric user and group (no login shell, no home of its own): the manifests' runAsUser/runAsGroup.
RUN groupadd --system --gid 10001 provisioner \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin provisioner

COPY --from=build /opt/provisioner /opt/provisioner

# HOME=/tmp: the only path the process writes to by default (the state mirror under ~/.local/state, the metrics
# folder in the temp dir); Kubernetes mounts emptyDirs on /tmp and /run/provisioner. Bytecode was compiled at
# build time, so nothing tries to write .pyc files into the read-only root.
ENV PATH=/opt/provisioner/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001
WORKDIR /tmp

# The worker's exporter and the API (its port and its exporter); documentation only: what listens, and where,
# is the settings' business (PROVISIONER_*_HOST default to 127.0.0.1).
EXPOSE 9464 8080 9465

ENTRYPOINT ["provisioner"]
CMD ["worker"]
