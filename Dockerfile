# clip-reconciler: `reconciler serve` in a slim image, as a non-root user.
#   docker build -t clip-reconciler .
#   docker run --env-file .env -p 8000:8000 clip-reconciler
# Two stages so that build tools and sources stay out of the final image.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the wheel needs (pyproject names README.md; the migration is packaged from supabase/).
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
COPY supabase ./supabase
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels clip-reconciler \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin reconciler
USER 10001
EXPOSE 8000
# python's urllib rather than curl: the slim image has no curl, and none is needed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)" || exit 1
# `serve` listens on 0.0.0.0:$PORT; SIGTERM stops it within RECONCILER_SHUTDOWN_SECONDS.
CMD ["reconciler", "serve"]
