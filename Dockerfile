# One image for every thumbs process (proxy, api, worker, migrate); nginx uses the official image.
# tests/test_install.py runs this file's `pip wheel` and `pip install` lines in a clean venv,
# so the image and CI's smoke test install the product the same way.
FROM node:20-bookworm-slim AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY thumbs/ thumbs/
COPY proxy/ proxy/
COPY library_api/ library_api/
COPY httpkit/ httpkit/
COPY nginx/ nginx/
# The built picker ships inside the wheel (pyproject maps frontend/dist to thumbs/web).
COPY --from=frontend /src/frontend/dist frontend/dist
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    # glibc arenas fragment under image work; two keep RSS flat (see docs/RELIABILITY.md).
    MALLOC_ARENA_MAX=2 \
    THUMBS_DATA_DIR=/data THUMBS_HOST=0.0.0.0 THUMBS_PORT=8000
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/thumbs-*.whl
RUN useradd --system --uid 1000 thumbs && mkdir -p /data && chown thumbs /data
USER thumbs
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["thumbs", "serve"]
