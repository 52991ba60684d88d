# One image for web, worker and beat.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files with production settings (the manifest production serves from), keys made for this
# step only: bin/build-static, which the tests run too.
RUN bin/build-static \
    && useradd --system --uid 1000 onramp && chown -R onramp /app
USER onramp
EXPOSE 8000
# Behind docker-compose.yml's TLS proxy, on the internal network only (see its web service).
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
