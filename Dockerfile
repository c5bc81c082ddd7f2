# One image for the API, the worker and the migration job.
#
# The first stage builds a wheel from the whole build context (less what
# .dockerignore leaves out), so no module can be forgotten; the image installs
# that wheel and keeps no source, so it runs as any non-editable install does.
# With no Docker engine on the test machines, tests/service/image.py carries
# this file out on folders (see tests/service/test_packaging.py).
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --create-home --uid 1000 backprop

USER backprop
# The embedded defaults keep ./data, so start where the service's user may write.
WORKDIR /home/backprop
EXPOSE 8000
CMD ["backprop", "up", "--host", "0.0.0.0"]
