# One image for every Stevedore service (STYLE.md: one base image; compose
# services differ by `command`):
#   docker run IMAGE gateway|registry|scheduler|runner|migrate
#   docker run IMAGE stevedore-host --only runner --runners 2
# The entrypoint (stevedore_jobs/entrypoint.py) waits for RabbitMQ and, for the
# services with tables, for the migrated database, then execs the service.
ARG PYTHON_IMAGE=python:3.11-slim

# The wheel, built from this checkout in a stage of its own: the image gets the
# installed package (config.yml and migrations are package data), not the source.
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY . /src
RUN python -m venv /build && /build/bin/pip wheel --no-deps --wheel-dir /dist /src

FROM ${PYTHON_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/stevedore/bin:$PATH

WORKDIR /app

# Dependencies first (the plain ones and the [server] extra's), in their own
# layer, so a code change does not reinstall them.
COPY pyproject.toml /tmp/pyproject.toml
RUN python -m venv /opt/stevedore \
 && python -c "import tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['server']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt /tmp/pyproject.toml

# The package with its [server] extra (already satisfied: nothing is downloaded).
COPY --from=wheel /dist /tmp/dist
RUN pip install "$(ls /tmp/dist/stevedore_jobs-*.whl)[server]" \
 && rm -r /tmp/dist \
 && python -c "import stevedore_jobs.serve as serve; serve.quiet_dependencies(); \
import services.gateway.service, services.runner.service, stevedore_jobs.entrypoint"

# Services run as an unprivileged user.  Registry and runner talk to the
# host's Docker engine through /var/run/docker.sock, which only root and the
# host's `docker` group may use: docker-compose.yml runs those two as root
# (or, with DOCKER_SOCKET_USER=10001 and DOCKER_SOCKET_GID set, as this user
# with the socket's group added); see
# docs/deployment.md for the trade-off.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home stevedore
USER 10001

EXPOSE 8000
ENTRYPOINT ["stevedore-entrypoint"]
CMD ["gateway"]
