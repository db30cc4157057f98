# One image for every Stevedore service (STYLE.md: one base image; compose
# services differ by `command`):
#   docker run IMAGE gateway|registry|scheduler|runner|migrate
#   docker run IMAGE stevedore-host --only runner --runners 2
# The entrypoint (stevedore_jobs/entrypoint.py) waits for RabbitMQ and, for the
# services with tables, for the migrated database, then execs the service.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/stevedore/bin:$PATH

WORKDIR /app

# Dependencies first, in their own layer, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -m venv /opt/stevedore \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The package itself, installed in place: config.yml, alembic.ini and
# migrations/ are read from /app (the services find them beside the code).
COPY . .
RUN pip install --no-deps -e . \
 && python -m compileall -q shared services stevedore migrations \
 && python -c "import services.gateway.service, services.runner.service, stevedore_jobs.entrypoint"

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
