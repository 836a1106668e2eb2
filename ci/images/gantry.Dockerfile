# The gantry binary: `serve gateway|auth|user|registry` (gateway by default).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
COPY gantry /usr/local/bin/gantry
ENV GANTRY_LISTEN=0.0.0.0:8000
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/gantry"]
CMD ["serve", "gateway"]
