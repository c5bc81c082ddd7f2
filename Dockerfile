# One image for the API, the worker and the migration job.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml README.md alembic.ini ./
COPY core ./core
COPY store ./store
COPY worker ./worker
COPY api ./api
COPY cli ./cli
COPY migrations ./migrations
# Editable, so that the Alembic scripts in /app/migrations stay next to the code.
RUN pip install --no-cache-dir -e . \
    && useradd --create-home --uid 1000 backprop

USER backprop
EXPOSE 8000
CMD ["backprop", "up", "--host", "0.0.0.0"]
