# The notes service (services/notes.rs) as an image: the binary cargo built,
# on the local Debian base.
ARG BASE_IMAGE=gantry/debian:bookworm
FROM ${BASE_IMAGE}
COPY notes /app/notes
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
USER 65534
CMD ["/app/notes"]
