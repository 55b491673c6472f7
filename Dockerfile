# syntax=docker/dockerfile:1
# Build a wheel (which carries the migrations inside the package), then install it in a
# slim image that runs as an unprivileged user in production mode.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/cleanwindow cleanwindow
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /var/lib/cleanwindow
# Production mode refuses to start without a real secret, DATABASE_URL and a non-zero
# proof-of-work difficulty; see README "Configuration".
ENV CLEANWINDOW_ENV=production \
    CLEANWINDOW_DATA_DIR=/var/lib/cleanwindow \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["cleanwindow"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
