#!/usr/bin/env bash
# Builds the example's services as images, as a team ships them:
#   any-stack/greeter:latest   services/greeter.py on Python
#   any-stack/notes:latest     services/notes.rs, built by cargo
# FROM the local Debian base that ci/images/build.sh makes (BASE_IMAGE to
# use another). stack.images.toml runs them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
BASE_IMAGE=${BASE_IMAGE:-gantry/debian:bookworm}
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "the base image $BASE_IMAGE is missing: run ci/images/build.sh first (or set BASE_IMAGE)" >&2
  exit 1
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
echo "== building notes"
(cd "$root" && cargo build --locked -p any-stack-example --bin notes)
cp "$root/target/debug/notes" "$here/../services/greeter.py" "$here"/*.Dockerfile "$ctx/"
for image in greeter notes; do
  echo "== building any-stack/$image:latest"
  docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$ctx/$image.Dockerfile" -t "any-stack/$image:latest" "$ctx" >/dev/null
done
echo "== done: any-stack/greeter:latest any-stack/notes:latest"
