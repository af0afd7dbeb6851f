# tl-mcp container: stdio by default, streamable HTTP with `--transport http`.
#   docker build -t tl-mcp .                                  # cloud only (needs TWELVELABS_API_KEY)
#   docker build -t tl-mcp --build-arg EXTRAS=sandbox .      # + the offline sandbox
#   docker build -t tl-mcp --build-arg EXTRAS=ml .           # + offline speech / OCR / semantic search
#   docker run -i --rm -e TWELVELABS_API_KEY tl-mcp                                   # stdio
#   docker run --rm -p 8000:8000 -e TWELVELABS_API_KEY -e TL_MCP_AUTH_TOKENS=... \
#     -e TL_MCP_ALLOWED_HOSTS=mcp.example.com tl-mcp serve --transport http        # remote
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tl_mcp ./tl_mcp
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install ".${EXTRAS:+[$EXTRAS]}"

FROM python:${PYTHON_VERSION}-slim
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin tlmcp
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TL_MCP_HOST=0.0.0.0 \
    TL_MCP_PORT=8000 \
    TL_MCP_SANDBOX_DIR=/home/tlmcp/sandbox
USER tlmcp
WORKDIR /home/tlmcp
EXPOSE 8000
# Probes /healthz when the server runs with --transport http; a stdio container is healthy while it runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["python", "-m", "tl_mcp.healthcheck"]
ENTRYPOINT ["tl-mcp"]
CMD ["serve"]
