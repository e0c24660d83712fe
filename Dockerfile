# The logistic-regression service as an image: uvicorn serving app.main:app, models in a volume.
#
#   docker build -t logreg-service .
#   docker run -d -p 8000:8000 -v logreg-models:/data/models logreg-service
#
# Settings are environment variables: the service's own (MODEL_STORE_DIR, MAX_ROWS, ... see the
# README) and uvicorn's (UVICORN_WORKERS, UVICORN_PORT, UVICORN_LOG_LEVEL, ...; uvicorn reads every
# command-line option from UVICORN_<OPTION>).
ARG PYTHON_VERSION=3.11

# ---- the dependency list, read from pyproject.toml's [project] table ----
# A stage of its own: the next stage copies only the list, so its (slow, large) install layer is
# rebuilt when the list changes, not when other parts of pyproject.toml or the code do.
# EXTRAS: optional-dependency groups installed too; `postgres` (psycopg and its pool, ~10 MB) so
# that one image serves MODEL_STORE_URL=postgresql://... (docker-compose.cluster.yml) as well as
# the folder store. `--build-arg EXTRAS=` leaves it out.
FROM python:${PYTHON_VERSION}-slim AS requirements
ARG EXTRAS=postgres
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + [d for e in os.environ['EXTRAS'].split() for d in p['optional-dependencies'][e]]))" > requirements.txt

# ---- build stage: dependencies, then the package; nothing of it but the results is kept ----
FROM python:${PYTHON_VERSION}-slim AS build
# A C compiler for the package's one extension, app/engine/_scores.c; it stays in this stage.
# The official image has Python's headers; a Debian-built Python (the local stand-in) takes them
# from Debian. Versions are the base image's Debian release's, so they are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && { python -c "import pathlib, sys, sysconfig; sys.exit(not pathlib.Path(sysconfig.get_paths()['include'], 'Python.h').exists())" \
         || apt-get install -y --no-install-recommends python3-dev; } \
    && rm -rf /var/lib/apt/lists/*
# The venv gets no pip or setuptools of its own (the base image's pip installs into it), so the
# runtime image carries no build tools beyond what the base image already has.
RUN python -m venv --without-pip /opt/venv
COPY --from=requirements /src/requirements.txt /tmp/requirements.txt
RUN python -m pip --python /opt/venv/bin/python install --no-cache-dir -r /tmp/requirements.txt
WORKDIR /src
# Then the package itself, without dependencies, into its own folder: whatever pyproject.toml
# declares as the package (and .dockerignore lets in) ends up in the image, nothing else.
COPY . .
RUN python -m pip install --no-cache-dir --no-deps --target /opt/app .

# ---- runtime stage ----
FROM python:${PYTHON_VERSION}-slim
RUN useradd --user-group --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
    && mkdir -p /data/models \
    && chown app:app /data/models
# Two layers: the dependencies (unchanged while pyproject.toml's list is) and the package.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/app /opt/app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MODEL_STORE_DIR=/data/models \
    UVICORN_HOST=0.0.0.0 \
    UVICORN_PORT=8000 \
    UVICORN_WORKERS=2 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1
# One BLAS thread per worker: N workers x the default of one thread per core oversubscribes the
# CPUs. Raise *_NUM_THREADS for a single worker training large models.
VOLUME ["/data/models"]
WORKDIR /data
USER 10001:10001
EXPOSE 8000
# No curl in a slim image: the stdlib's urllib; a non-2xx answer or no answer raises -> exit 1.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('UVICORN_PORT', '8000'), timeout=4)"]
CMD ["uvicorn", "app.main:app"]
