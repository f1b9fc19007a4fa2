# tbptt-online: the HTTP service on CPU-only PyTorch, run as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The CPU build of torch first (its own layer: large, and changes least often).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY tbptt_online ./tbptt_online
COPY service ./service
# EXTRAS="[cluster]" adds Ray (the cluster profile of docker-compose.yml builds it so)
ARG EXTRAS=""
RUN pip install ".${EXTRAS}"

# The hybrid's compiled kernels (numba) are compiled once here, into a cache the service user
# reads (and may add to), not at the first request of every container.
ENV NUMBA_CACHE_DIR=/app/.numba-cache
RUN python -c "from tbptt_online.warm import warm_kernels; warm_kernels()"

# /shared: the cluster profile's checkpoints volume (docker-compose.yml); a named volume mounted where the image has
# no directory is made root's, and the shards, running as tbptt, could not write their checkpoints there
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin tbptt \
    && mkdir -p /var/lib/tbptt-online /shared \
    && chown tbptt:tbptt /var/lib/tbptt-online /shared \
    && chown -R tbptt:tbptt /app/.numba-cache
USER tbptt

ENV TBPTT_HOST=0.0.0.0 \
    TBPTT_PORT=8000 \
    TBPTT_STATE_DIR=/var/lib/tbptt-online
VOLUME ["/var/lib/tbptt-online"]
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]

# SIGTERM (docker stop) lets uvicorn finish in-flight requests; the model workers then drain.
STOPSIGNAL SIGTERM
CMD ["tbptt-online", "serve"]
