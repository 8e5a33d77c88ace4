# One image for every thumbs process (proxy, api, worker, migrate); nginx uses the official image.
FROM node:20-bookworm-slim AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    # glibc arenas fragment under image work; two keep RSS flat (see docs/RELIABILITY.md).
    MALLOC_ARENA_MAX=2 \
    THUMBS_DATA_DIR=/data THUMBS_HOST=0.0.0.0 THUMBS_PORT=8000
WORKDIR /app
COPY pyproject.toml README.md ./
COPY thumbs/ thumbs/
COPY proxy/ proxy/
COPY library_api/ library_api/
COPY nginx/ nginx/
RUN pip install --no-cache-dir .
COPY --from=frontend /src/frontend/dist frontend/dist
RUN useradd --system --uid 1000 thumbs && mkdir -p /data && chown thumbs /data
USER thumbs
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["thumbs", "serve"]
