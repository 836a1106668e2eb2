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
# The image says itself when it is ready: stack.images.toml waits on this.
HEALTHCHECK --interval=1s --timeout=2s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=2)"]
USER 65534
CMD ["python3", "/app/greeter.py"]
