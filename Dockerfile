# syntax=docker/dockerfile:1
# One image pattern for every CareOps service. The build arg SERVICE picks the package whose
# `main` module the container runs: ticketing, customer, incident, quality, gateway.
#   docker build --build-arg SERVICE=ticketing -t careops-ticketing .
# PYTHON_IMAGE is any bookworm image with python3 3.11 (venv), tzdata, ca-certificates and useradd:
# the official python image, or the base `make images` builds from Debian's packages with
# mmdebstrap (scripts/images.sh, docs/images.md). Builder and runtime use the same one, so the venv's
# interpreter path holds in both.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: pinned dependencies, generated protobuf code, the careops package ------------------
FROM ${PYTHON_IMAGE} AS builder
# pip trusts the base's CA store rather than its own bundled copy, so a build behind a
# TLS-inspecting proxy can bind-mount a local CA bundle over it for the RUN steps alone
# (scripts/images.sh does, with podman build -v); nothing of it lands in a layer.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.in requirements.lock ./
# Only what the services run with: requirements.in above its "development and test" section, at
# the versions of the lock (the test and lint tools would double the image and its build time).
RUN sed '/^# development and test/,$d' requirements.in > runtime.in \
 && pip install -q --upgrade pip && pip install -q -c requirements.lock -r runtime.in
COPY pyproject.toml buf.yaml ./
COPY proto ./proto
# The Makefile's proto recipe into gen/, less the .pyi stubs (for type checkers only).
RUN rm -rf gen && mkdir -p gen \
 && python -m grpc_tools.protoc -Iproto --python_out=gen --grpc_python_out=gen \
      $(find proto -name '*.proto') \
 && find gen -type d -exec touch {}/__init__.py \; \
 && rm -f gen/__init__.py
COPY libs ./libs
COPY services ./services
COPY cli ./cli
# Non-editable: the runtime image holds only the venv, not the sources.
RUN pip install -q --no-deps . \
 && python -c "import careops_platform, careops_eventstore, careops.common.v1.admin_pb2"

# ---- runtime: slim, non-root, read-only root filesystem friendly ---------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# No apt here: SLA business calendars resolve IANA zones (e.g. Asia/Shanghai) with zoneinfo, from
# the base's tzdata or the pinned tzdata wheel; the build fails below if they do not resolve.
RUN groupadd --gid 10001 careops \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp/careops \
      --shell /usr/sbin/nologin careops
# Before ARG SERVICE: the five images share these layers (the venv is most of an image).
COPY --from=builder /opt/venv /opt/venv
ARG SERVICE=ticketing
LABEL org.opencontainers.image.title="careops-${SERVICE}"
# /tmp is an emptyDir in the chart; the root filesystem stays read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SERVICE=${SERVICE} \
    CAREOPS_DATA_DIR=/tmp/careops \
    CAREOPS_GRPC_HOST=0.0.0.0 \
    HOME=/tmp/careops
# Fail the build early if SERVICE names no service package or the base has no IANA zones.
RUN python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('${SERVICE}.main') is None)" \
 && python -c "import zoneinfo; zoneinfo.ZoneInfo('Asia/Shanghai')"
WORKDIR /tmp
USER 10001:10001
# Documented defaults; the chart sets the real ports per service (ARCHITECTURE §5).
EXPOSE 50050-50054 9101-9105 8080
# Shell form so ${SERVICE} (baked in as an ENV) is expanded; exec replaces the shell so
# the service is PID 1 and receives SIGTERM for its graceful shutdown.
CMD ["sh", "-c", "exec python -m \"${SERVICE}.main\""]
