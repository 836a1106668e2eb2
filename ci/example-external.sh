#!/usr/bin/env bash
# The example stack (examples/any-stack) run as a team runs it by hand,
# `gantry up --config`, then validated by its own scenarios in external mode,
# as a team validates its deployed stack: those that break instances
# (@needs:process) are listed as not run, every other one must pass.
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
work=$(mktemp -d)
log="$work/up.log"
# `gantry up` records itself in the user's runtime folder: a private one
# keeps this run apart from a stack the user may be running.
export XDG_RUNTIME_DIR="$work/run"
mkdir -m 700 "$XDG_RUNTIME_DIR"

echo "== example-external: building gantry and the example's notes service"
cargo build --locked --bin gantry --bin notes

echo "== example-external: gantry up --config examples/any-stack/stack.toml (gateway on 127.0.0.1:$port)"
target/debug/gantry up --config examples/any-stack/stack.toml --port "$port" --infra local >"$log" 2>&1 &
up=$!
stop() {
  kill -INT "$up" 2>/dev/null || true
  wait "$up" 2>/dev/null || true
  rm -rf "$work"
}
trap stop EXIT

# What `gantry up` prints once every part passed its readiness check.
deadline=$((SECONDS + 180))
until grep -q '^Ready in' "$log"; do
  if ! kill -0 "$up" 2>/dev/null; then
    cat "$log"; echo "example-external: gantry up exited before the stack was ready" >&2; exit 1
  fi
  if [ "$SECONDS" -gt "$deadline" ]; then
    cat "$log"; echo "example-external: the stack was not ready within 180 s" >&2; exit 1
  fi
  sleep 0.5
done
# The registry's address and token, as `gantry up` prints them for a team's
# own clients: the scenarios that read the services' health use them.
registry=$(awk '/\(CONSUL_HTTP_ADDR\)/ {print $2; exit}' "$log")
token=$(awk '/\(CONSUL_HTTP_TOKEN\)/ {print $1; exit}' "$log")
if [ -z "$registry" ] || [ -z "$token" ]; then
  cat "$log"; echo "example-external: gantry up printed no registry address and token" >&2; exit 1
fi
# Named as a team names its deployed stacks: a table of an environments file
# (examples/any-stack/environments.toml's [local], on this run's port), the
# secret token from the environment.
cat >"$work/environments.toml" <<TOML
[ci]
GANTRY_GATEWAY_URL = "http://127.0.0.1:$port"
CONSUL_HTTP_ADDR = "$registry"
TOML
echo "== example-external: ready (registry $registry); the example's scenarios against GANTRY_ENV=ci"
GANTRY_ENV=ci GANTRY_ENVIRONMENTS="$work/environments.toml" CONSUL_HTTP_TOKEN="$token" \
  GANTRY_REPORTS="$PWD/target/cucumber/any-stack-external" \
  cargo test --locked -p any-stack-example --test stack
