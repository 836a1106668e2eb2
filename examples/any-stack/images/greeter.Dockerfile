# The greeter (services/greeter.py) as an image: Python's standard library
# on the local Debian base (ci/images/build.sh makes it; no registry is needed).
ARG BASE_IMAGE=gantry/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY greeter.py /app/greeter.py
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
USER 65534
CMD ["python3", "/app/greeter.py"]
