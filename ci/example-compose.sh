#!/usr/bin/env bash
# The example stack deployed as a team deploys its own, from its images
# (examples/any-stack/compose.yaml), then validated by its own scenarios in
# external mode, as ci/deploy-validate.sh does for Gantry's stack: those that
# break instances or call one past the gateway are listed as not run, every
# other one must pass. Secrets and ports are fresh per run.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v docker-compose >/dev/null 2>&1; then compose_cmd=(docker-compose)
elif docker compose version >/dev/null 2>&1; then compose_cmd=(docker compose)
else echo "example-compose: neither docker-compose nor 'docker compose' is installed" >&2; exit 2; fi
project="any-stack-validate-$$"
compose() { "${compose_cmd[@]}" -p "$project" -f examples/any-stack/compose.yaml "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EXAMPLE_GATEWAY_PORT=$(free_port)
EXAMPLE_REGISTRY_PORT=$(free_port)
GANTRY_REDIS_PASSWORD=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
GANTRY_REGISTRY_TOKEN=$(cat /proc/sys/kernel/random/uuid)
GANTRY_JWT_SIGNING_KEY=$(docker run --rm "${GANTRY_IMAGE:-gantry/gantry:latest}" keygen)
export EXAMPLE_GATEWAY_PORT EXAMPLE_REGISTRY_PORT GANTRY_REDIS_PASSWORD GANTRY_REGISTRY_TOKEN GANTRY_JWT_SIGNING_KEY

tear_down() {
  echo "== example-compose: tearing down $project"
  compose down -v --remove-orphans >/dev/null 2>&1 || true
}
trap tear_down EXIT

echo "== example-compose: deploying examples/any-stack/compose.yaml as $project"
compose up -d
# The gateway is healthy once every service it routes has a passing
# instance: it comes last (after the registrar registered them).
echo "== example-compose: waiting for the gateway's healthcheck"
gateway=$(compose ps -q gateway)
deadline=$((SECONDS + 180))
until [ "$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$gateway" 2>/dev/null)" = healthy ]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "example-compose: the gateway is not healthy after 180 s" >&2
    compose ps >&2 || true
    compose logs --tail 30 >&2 || true
    exit 1
  fi
  sleep 1
  gateway=$(compose ps -q gateway)
done

echo "== example-compose: the example's scenarios in external mode against http://127.0.0.1:$EXAMPLE_GATEWAY_PORT"
set +e
GANTRY_INFRA=external GANTRY_GATEWAY_URL="http://127.0.0.1:$EXAMPLE_GATEWAY_PORT" \
  CONSUL_HTTP_ADDR="http://127.0.0.1:$EXAMPLE_REGISTRY_PORT" CONSUL_HTTP_TOKEN="$GANTRY_REGISTRY_TOKEN" \
  GANTRY_REPORTS="$PWD/target/cucumber/any-stack-compose" \
  cargo test --locked -p any-stack-example --test stack
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "example-compose: the deployment failed validation; the last lines of each service's log:" >&2
  compose logs --tail 20 >&2 || true
fi
exit "$status"
