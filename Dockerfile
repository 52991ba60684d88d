# Two targets. `production` (the last stage, built by default): one image for web, worker and beat, with
# requirements.txt only. `sandbox`: the sandbox AWS for docker-compose.yml's dev profile, moto's server
# (requirements-sandbox.txt) with the sandbox/ package; never what production runs.
#
# Only named files and directories are copied, never the build context as a whole: the directory an operator
# builds in holds .env, db.env and certs/privkey.pem (docs/deploying.md, "Running it with docker compose"), which an
# image must not carry. tests/test_deploy.py reads these COPY lines.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN useradd --system --uid 1000 onramp

FROM base AS sandbox
COPY requirements.txt requirements-sandbox.txt ./
RUN pip install --no-cache-dir -r requirements-sandbox.txt
COPY sandbox/ sandbox/
# Its state (sandbox/state.py) is written at a clean stop, in a directory the onramp user owns.
RUN mkdir /var/lib/sandbox && chown onramp /var/lib/sandbox
USER onramp
EXPOSE 5000
CMD ["python", "-m", "sandbox.state", "--host", "0.0.0.0", "--port", "5000", "--state", "/var/lib/sandbox/state.pickle.gz"]

FROM base AS production
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY manage.py ./
COPY portal/ portal/
COPY provisioning/ provisioning/
COPY templates/ templates/
COPY static/ static/
COPY bin/build-static bin/build-static
# Static files with production settings (the manifest production serves from), keys made for this
# step only: bin/build-static, which the tests run too.
RUN bin/build-static && chown -R onramp /app
USER onramp
EXPOSE 8000
# Behind docker-compose.yml's TLS proxy, on the internal network only (see its web service).
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
