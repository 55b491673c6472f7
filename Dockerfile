# syntax=docker/dockerfile:1
# Clean Window's production image (docs/deployment.md, "The image").
#
# Stage 1 builds the wheel, which carries the Alembic migrations inside the package
# (pyproject.toml, force-include). Stage 2 installs that wheel without the `embedded`
# extra: the image has no PostgreSQL binaries and needs DATABASE_URL. It runs as the
# numeric user 10001 on a read-only root filesystem; only /tmp must be writable.
#
# The base image is pinned to a Python patch release and a Debian release, so a rebuild
# gets the same interpreter; bump both stages together, on purpose.

FROM python:3.11.17-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --no-deps --disable-pip-version-check --wheel-dir /wheels .

FROM python:3.11.17-slim-bookworm
LABEL org.opencontainers.image.title="Clean Window" \
      org.opencontainers.image.description="Anonymous, end-to-end encrypted corruption reporting with triage and mock drills" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.17-slim-bookworm"

# The wheel is bind-mounted from the build stage, so no layer keeps a copy of it. The
# dependencies come from PyPI (pip compiles their bytecode here, at build time: at run
# time nothing can be written next to them). pip, setuptools and wheel are removed
# afterwards: the service never installs anything, and a scanner then has three fewer
# packages to flag. The account has no home: HOME points at /tmp below.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check /wheels/cleanwindow-*.whl \
    && python -m pip uninstall --yes --disable-pip-version-check pip setuptools wheel \
    && groupadd --system --gid 10001 cleanwindow \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin cleanwindow

# Production mode refuses to start without a real CLEANWINDOW_SECRET_KEY, DATABASE_URL,
# RECOVERY_PUBLIC_KEY and a non-zero POW_DIFFICULTY (README, "Configuration"): the
# deployer supplies them. With a read-only root filesystem /tmp is the only writable
# place: HOME and the data folder point there, and Python writes no bytecode.
ENV CLEANWINDOW_ENV=production \
    CLEANWINDOW_DATA_DIR=/tmp/cleanwindow \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Empty and owned by root: settings read `.env` from here, so nothing the service runs
# as can plant one (an operator may mount one read-only).
WORKDIR /srv/cleanwindow
USER 10001:10001
EXPOSE 8000
# Liveness only (/healthz: the process answers). Readiness (/readyz: the database is at
# this release's schema) is for a load balancer, not for restarting the container. The
# proxy handler is empty so that an HTTP_PROXY given to the container is not asked for
# the container's own port. The start period covers the migrations run at start.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request as r; sys.exit(r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
# `serve` migrates the database at start (under an advisory lock); `worker` runs the
# background jobs; every other `cleanwindow` command works too (`users create`, `db upgrade`).
ENTRYPOINT ["cleanwindow"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
