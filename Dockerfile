# ddeutil-workflow scheduler daemon as a container (a sidecar or a standalone service).
#
#   docker build -t ddeutil-workflow .
#   docker run -d --name workflow --init --stop-timeout 90 \
#       -v "$PWD/conf:/app/conf:ro" -v workflow-data:/app/.workflow ddeutil-workflow
#
# Prometheus metrics of the daemon: build with --build-arg EXTRAS=metrics and run with
# -e WORKFLOW_APP_METRICS_PORT=9108 -e WORKFLOW_APP_METRICS_HOST=0.0.0.0 -p 9108:9108.
#
# A Celery worker (README, "Scaling out"): build with --build-arg EXTRAS=celery,postgres and
# run the image with the command `workflow worker --concurrency 50`; SIGTERM drains it the
# same way (WORKFLOW_APP_STOP_TIMEOUT, then cancel).
#
# Stopping: `docker stop` sends SIGTERM (STOPSIGNAL below). The daemon stops ticking,
# lets running pipelines finish for WORKFLOW_APP_STOP_TIMEOUT seconds (60 here), then
# cancels the rest (shell children included), records them CANCELLED and exits 0.
# Docker kills the container after --stop-timeout seconds (default only 10), so pass a
# --stop-timeout ABOVE WORKFLOW_APP_STOP_TIMEOUT (e.g. 90) or the drain window is cut
# short (compose: `stop_grace_period: 90s`; Kubernetes: terminationGracePeriodSeconds).
#
# PID 1: the daemon reaps orphaned children itself, but `docker run --init` (tini) is
# still recommended so that signals and zombies are handled by a dedicated init.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system workflow \
    && useradd --system --gid workflow --home-dir /app --shell /usr/sbin/nologin workflow

# Extras to install, e.g. `--build-arg EXTRAS=celery,postgres` for `workflow worker` on a
# PostgreSQL store (the same image then runs the daemon, the API or a worker).
ARG EXTRAS=""

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".${EXTRAS:+[$EXTRAS]}" && rm -rf /build

WORKDIR /app
COPY --chown=workflow:workflow conf ./conf
RUN install -d -o workflow -g workflow /app/.workflow

# Defaults; override with `docker run -e` or an env file. See the README's configuration table.
ENV WORKFLOW_ROOT_PATH=/app \
    WORKFLOW_CORE_PATH_CONF=conf \
    WORKFLOW_CORE_TIMEZONE=UTC \
    WORKFLOW_LOG_PATH=.workflow/logs \
    WORKFLOW_APP_PROCESS_WORKER=2 \
    WORKFLOW_APP_PIPELINE_PER_PROCESS=100 \
    WORKFLOW_APP_STOP_TIMEOUT=60 \
    WORKFLOW_APP_HEALTH_STALE=180

# conf/ (templates, mount read-only) and .workflow/ (run store, per-run logs, lock file).
VOLUME ["/app/conf", "/app/.workflow"]

USER workflow

STOPSIGNAL SIGTERM

# Healthy while the scheduler heartbeat (written every minute) is fresher than
# WORKFLOW_APP_HEALTH_STALE seconds.
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s --retries=3 \
    CMD ["workflow", "health"]

CMD ["python", "-m", "ddeutil.workflow.app"]
