#!/usr/bin/env bash
# Builds the images the containers provider runs, on a machine whose Docker
# engine cannot pull from any image registry:
#
#   gantry/debian:bookworm   a Debian root filesystem made by debootstrap, imported
#   gantry/redis:latest      Redis from Debian's package
#   gantry/registry:latest   the dev registry (gantry serve registry)
#   gantry/gantry:latest     the gantry binary (gateway by default)
#
# Then:  GANTRY_REDIS_IMAGE=gantry/redis:latest GANTRY_REGISTRY_IMAGE=gantry/registry:latest \
#        GANTRY_INFRA=containers cargo test --test bdd
# With registry access none of this is needed: the pinned public images are used.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BASE_IMAGE=${BASE_IMAGE:-gantry/debian:bookworm}
SUITE=${SUITE:-bookworm}

say() { printf '== %s\n' "$*"; }

# The Debian mirror this machine's apt already uses (deb822 or one-line sources).
mirror() {
  {
    grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
  } | awk '/^URIs:/ {print $2; next} {print $2}' | { grep -v security || true; } | head -n1
}

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "base image $BASE_IMAGE is present"
else
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  src=$(mirror)
  if [ -z "$src" ]; then
    echo "no Debian mirror found in the apt sources; set one up or pass BASE_IMAGE" >&2
    exit 1
  fi
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  say "debootstrap $SUITE (minbase, with redis-server) — a few minutes"
  debootstrap --variant=minbase --include=redis-server,ca-certificates "$SUITE" "$rootfs" "$src" >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  say "importing $BASE_IMAGE"
  tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
fi

# Without the harness (cargo feature `harness`): an image carries the
# stack's components only, not testcontainers, Cucumber and the rest.
say "building the gantry binary (release, without the harness)"
(cd "$root" && cargo build --release --locked --no-default-features --bin gantry)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$root/target/release/gantry" "$ctx/gantry"
cp "$here"/*.Dockerfile "$ctx/"

for image in redis registry gantry; do
  say "building gantry/$image:latest"
  docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$ctx/$image.Dockerfile" -t "gantry/$image:latest" "$ctx" >/dev/null
done
say "done: $(docker images --format '{{.Repository}}:{{.Tag}}' | grep '^gantry/' | tr '\n' ' ')"
