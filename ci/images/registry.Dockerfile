# Gantry's dev registry: Consul's HTTP API subset, for hermetic runs.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
COPY gantry /usr/local/bin/gantry
ENV GANTRY_LISTEN=0.0.0.0:8500
EXPOSE 8500
ENTRYPOINT ["/usr/local/bin/gantry"]
CMD ["serve", "registry"]
