# syntax=docker/dockerfile:1
#
# Tally container image.
#
#   docker build -t tally:0.1.0 .
#   docker run --rm -p 50051:50051 \
#       -e TALLY_DATABASE_URL=postgresql+psycopg://user:pass@host/db tally:0.1.0
#   docker run --rm -e TALLY_DATABASE_URL=... tally:0.1.0 migrate
#
# Two stages: "build" installs the project from the local source tree into a
# virtualenv at /opt/venv; "runtime" copies only that virtualenv across, so no
# source tree, build cache or build tooling ends up in the final image. The
# venv path is identical in both stages because console-script shebangs are
# absolute paths.

############################
# Stage 1: build
############################
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# README.md is referenced by pyproject.toml; the trailing "*" keeps the build
# working while it is absent (setuptools only warns about a missing readme).
COPY pyproject.toml README.md* ./
COPY src/ ./src/
# tally-client: the `tally` command calls the server through it, and it installs with tally (pyproject.toml).
COPY clients/python/tally_client/ ./clients/python/tally_client/

# Regular (non-editable) install from the local source tree: the package and
# its byte-compiled modules land in /opt/venv/lib/.../site-packages, which
# matters because the runtime filesystem is read-only in Kubernetes.
RUN pip install --upgrade pip setuptools wheel \
 && pip install /src \
 && python -c "import tally.cli, tally_client"

############################
# Stage 2: runtime
############################
FROM python:3.11-slim AS runtime

# Fixed numeric UID/GID; must match securityContext.runAsUser/runAsGroup in
# k8s/deployment.yaml and k8s/migration-job.yaml.
RUN groupadd --system --gid 10001 tally \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /app --shell /usr/sbin/nologin tally \
 && mkdir -p /app \
 && chown 10001:10001 /app

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TALLY_LISTEN_ADDRESS=0.0.0.0:50051

# Writable working directory for the default SQLite database when run locally
# without TALLY_DATABASE_URL.
WORKDIR /app
USER 10001:10001

EXPOSE 50051

# Optional for plain Docker / Compose; Kubernetes ignores it and uses native
# gRPC probes instead. Queries grpc.health.v1 on the port of
# TALLY_LISTEN_ADDRESS; any error (refused, timeout, NOT_SERVING) -> unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as hg; port = os.environ.get('TALLY_LISTEN_ADDRESS', '0.0.0.0:50051').rsplit(':', 1)[1]; r = hg.HealthStub(grpc.insecure_channel('127.0.0.1:' + port)).Check(h.HealthCheckRequest(), timeout=3); sys.exit(0 if r.status == h.HealthCheckResponse.SERVING else 1)"]

# SIGTERM triggers the graceful drain (NOT_SERVING, then up to
# TALLY_SHUTDOWN_GRACE_S seconds). Exec form keeps tally as PID 1 so it
# receives the signal directly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tally"]
CMD ["serve"]
