# The django-mongo-sessions demo site (example_project/) served by gunicorn.
#
#   docker build -t mongo-sessions-demo .
#   docker run -p 8000:8000 mongo-sessions-demo
#       embedded MongoDB-wire server (SecantusDB) inside the container,
#       its data and the demo's user table in the /data volume
#   docker run -p 8000:8000 -e MONGO_SESSIONS_URL=mongodb://db.example:27017/demo \
#       -e DJANGO_SECRET_KEY=... mongo-sessions-demo
#       sessions in that MongoDB server; nothing else is started
#
# compose.yaml runs it against the official mongo:7 image.
# .ci/container_check.sh builds and runs it in CI and checks that a session
# persists across requests.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

# The package with the demo extra (gunicorn, SecantusDB), installed from a
# copy that is removed again: the image runs the installed package.
COPY pyproject.toml README.rst LICENSE /tmp/src/
COPY mongo_sessions/ /tmp/src/mongo_sessions/
RUN /opt/venv/bin/pip install "/tmp/src[demo]" \
 && rm -rf /tmp/src

# The example project after the install, so editing it reuses the layer above.
WORKDIR /app
COPY example_project/ /app/example_project/

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
        --shell /usr/sbin/nologin app \
 && mkdir -p /data \
 && chown app:app /data

USER app
VOLUME ["/data"]
EXPOSE 8000

# The demo is reached under whatever name the container gets: accept any Host
# header unless told otherwise. DJANGO_SECRET_KEY has a public demo-only
# default in the settings: set it for anything others can reach.
ENV DJANGO_ALLOWED_HOSTS="*"

# Slim images have no curl: ask /health/ (200 once MongoDB answers) with urllib.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/', timeout=4).status == 200 else 1)"]

# rundemo starts the embedded server unless MONGO_SESSIONS_URL is set, then
# gunicorn; SIGTERM (docker stop) stops gunicorn, then the embedded server.
STOPSIGNAL SIGTERM
CMD ["python", "example_project/manage.py", "rundemo", "--host", "0.0.0.0", "--port", "8000", "--data-dir", "/data"]
