# Redis from Debian's package, on the base image build.sh makes (or any Debian).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN command -v redis-server >/dev/null \
    || (apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/*)
RUN mkdir -p /data
WORKDIR /data
EXPOSE 6379
# Protected mode stays on: without a password Redis answers loopback clients
# only. Give it one (`requirepass`, in a config file) to serve the network;
# the harness and ci/compose.yaml do.
CMD ["redis-server", "--bind", "0.0.0.0", "--dir", "/data"]
