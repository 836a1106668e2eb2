#!/usr/bin/env bash
# Deploy, probe, validate: deploys ci/compose.yaml (images from
# ci/images/build.sh), waits until every container's healthcheck passes,
# runs the Cucumber suite against it in external mode, and tears it down.
#
#   bash ci/deploy-validate.sh            # exit status: the suite's
#   bash ci/deploy-validate.sh --broken   # auth gets a wrong signing key; exits 0
#                                         # only if the validation FAILS, at the
#                                         # scenarios that use the stack's key
#
# Secrets (Redis password, registry token, signing key) are generated per run;
# ports are free loopback ports. Needs docker-compose (or `docker compose`).
set -euo pipefail
cd "$(dirname "$0")/.."

broken=0
if [ "${1:-}" = "--broken" ]; then broken=1; fi

if command -v docker-compose >/dev/null 2>&1; then
  compose_cmd=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
else
  echo "deploy-validate: neither docker-compose nor 'docker compose' is installed" >&2
  exit 2
fi
project="gantry-validate-$$"
files=(-f ci/compose.yaml)
if [ "$broken" = 1 ]; then files+=(-f ci/compose.broken-key.yaml); fi
compose() { "${compose_cmd[@]}" -p "$project" "${files[@]}" "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GANTRY_GATEWAY_PORT=$(free_port)
GANTRY_ADMIN_PORT=$(free_port)
GANTRY_REDIS_PORT=$(free_port)
GANTRY_REDIS_PASSWORD=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
GANTRY_REGISTRY_TOKEN=$(cat /proc/sys/kernel/random/uuid)
# Keys from the image about to be deployed: nothing of this tree is built for them.
keygen() { docker run --rm "${GANTRY_IMAGE:-gantry/gantry:latest}" keygen; }
GANTRY_JWT_SIGNING_KEY=$(keygen)
GANTRY_WRONG_SIGNING_KEY=$(keygen)
export GANTRY_GATEWAY_PORT GANTRY_ADMIN_PORT GANTRY_REDIS_PORT GANTRY_REDIS_PASSWORD \
  GANTRY_REGISTRY_TOKEN GANTRY_JWT_SIGNING_KEY GANTRY_WRONG_SIGNING_KEY

tear_down() {
  echo "== deploy-validate: tearing down $project"
  compose down -v --remove-orphans >/dev/null 2>&1 || true
}
trap tear_down EXIT

echo "== deploy-validate: deploying ci/compose.yaml as $project$([ "$broken" = 1 ] && echo ' (broken on purpose: auth signs with a wrong key)')"
compose up -d

# What `docker compose up --wait` does (docker-compose v1 has no --wait), by
# hand: it reports each container as it turns healthy, and on a timeout
# prints every container's health output and logs.
echo "== deploy-validate: waiting for every healthcheck"
deadline=$((SECONDS + 180))
declare -A reported=()
while :; do
  pending=0
  for id in $(compose ps -q); do
    name=$(docker inspect -f '{{.Name}}' "$id" | sed 's|^/||')
    health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id")
    case "$health" in
      healthy)
        if [ -z "${reported[$name]:-}" ]; then echo "   $name healthy"; reported[$name]=1; fi ;;
      *) pending=$((pending + 1)) ;;
    esac
  done
  if [ "$pending" -eq 0 ]; then break; fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "deploy-validate: $pending container(s) not healthy after 180 s:" >&2
    for id in $(compose ps -q); do
      docker inspect -f '{{.Name}}: {{if .State.Health}}{{.State.Health.Status}}{{range .State.Health.Log}}{{"\n    "}}{{.Output}}{{end}}{{else}}{{.State.Status}}{{end}}' "$id" >&2
    done
    compose logs --tail 30 >&2 || true
    exit 1
  fi
  sleep 1
done

echo "== deploy-validate: the Cucumber suite in external mode against http://127.0.0.1:$GANTRY_GATEWAY_PORT"
out=$(mktemp)
# The reports of this run, apart from those of the suite's other runs; a broken
# deployment's (failures expected) outside target/cucumber.
if [ "$broken" = 1 ]; then reports=target/cucumber-broken-deployment; else reports=target/cucumber/deployed; fi
set +e
GANTRY_REPORTS="$reports" GANTRY_INFRA=external \
  GANTRY_GATEWAY_URL="http://127.0.0.1:$GANTRY_GATEWAY_PORT" \
  GANTRY_GATEWAY_ADMIN_URL="http://127.0.0.1:$GANTRY_ADMIN_PORT" \
  REDIS_URL="redis://:$GANTRY_REDIS_PASSWORD@127.0.0.1:$GANTRY_REDIS_PORT" \
  cargo test --test bdd 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e

if [ "$broken" = 0 ]; then
  if [ "$status" -ne 0 ]; then
    echo "deploy-validate: the deployment failed validation; the last lines of each service's log:" >&2
    compose logs --tail 20 >&2 || true
  fi
  exit "$status"
fi
# The broken deployment must fail, and at the scenarios that use the key.
if [ "$status" -eq 0 ]; then
  echo "deploy-validate --broken: a deployment with a wrong signing key PASSED validation" >&2
  exit 1
fi
# The scenarios with a failed step (✘), as the report names them.
failed=$(awk '/^ *Scenario( Outline)?:/ {scenario=$0} /✘/ && scenario != "" {print scenario; scenario=""}' "$out" | sed 's/^ *//')
echo "deploy-validate --broken: the validation failed at:"
echo "$failed" | sed 's/^/   /'
if ! grep -q "signed by the stack's key" <<<"$failed"; then
  echo "deploy-validate --broken: ... but not at the scenarios that use the stack's signing key" >&2
  exit 1
fi
echo "deploy-validate --broken: the wrong signing key was caught, as it should be."
exit 0
