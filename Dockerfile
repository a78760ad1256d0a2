# honcho-grpc service image: server (default) or worker (`honcho-grpc worker`).
# Small: python slim, no compilers in the final stage, runs as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY honcho_grpc ./honcho_grpc
# The generated stubs are their own distribution, which the service depends on; installed in
# the same pip run, the local copy satisfies that dependency (no index has it).
COPY proto/python ./proto/python
RUN pip install --no-cache-dir --prefix=/install ./proto/python .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home /app honcho \
 && mkdir -p /app/.data /app/.cache && chown -R honcho /app
COPY --from=build /install /usr/local
WORKDIR /app
USER honcho
ENV SERVER_HOST=0.0.0.0 SERVER_PORT=50051 DB_DATA_DIR=/app/.data/pg XDG_CACHE_HOME=/app/.cache
# The embedding model's compact copy (providers/minilm/compact.py) is made here, once,
# rather than by every container's first start.
RUN python -c "from honcho_grpc.providers.embeddings import LocalEmbedder; LocalEmbedder().warm()"
EXPOSE 50051
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD python -c "import grpc,sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; \
c=grpc.insecure_channel('127.0.0.1:50051'); \
sys.exit(0 if g.HealthStub(c).Check(h.HealthCheckRequest(),timeout=2).status==1 else 1)"
ENTRYPOINT ["honcho-grpc"]
CMD ["serve"]
