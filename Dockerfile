# image-updater: a small, non-root image that runs `image-updater run`.
#
#   docker build -t image-updater:0.1.0 .
#   docker run --rm -p 8080:8080 -p 8082:8082 -v "$PWD/config.yaml:/etc/image-updater/config.yaml:ro" image-updater:0.1.0
#
# Builds wherever a Docker (or BuildKit / Podman) engine exists; the development machines of this
# project have none, so the test suite checks the Kubernetes install (manifests/) but not this build.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY image_updater ./image_updater
RUN python -m venv /opt/image-updater \
 && /opt/image-updater/bin/pip install . \
 && find /opt/image-updater -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
# git runs every clone, fetch and push (GitPython drives it); openssh-client for ssh:// remotes.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 image-updater \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/image-updater --create-home image-updater \
 && mkdir -p /var/cache/image-updater /etc/image-updater \
 && chown 10001:10001 /var/cache/image-updater
COPY --from=build /opt/image-updater /opt/image-updater
ENV PATH=/opt/image-updater/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/image-updater \
    IMAGE_UPDATER_GIT_CACHE_DIR=/var/cache/image-updater
USER 10001:10001
WORKDIR /home/image-updater
# 8080: /healthz, /readyz, /metrics; 8082: POST /webhook
EXPOSE 8080 8082
ENTRYPOINT ["image-updater"]
CMD ["run", "--config", "/etc/image-updater/config.yaml"]
