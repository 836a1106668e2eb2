#!/usr/bin/env bash
# The whole stack's speed as an outside client sees it (issue 21's first
# figures): a bearer GET /users/me straight to one user instance at one
# connection (p50, p99), and through the gateway at 16 connections (req/s),
# with wrk, against `gantry up` (3 user instances, local processes).
#   ci/stack-wrk.sh [path/to/gantry]   (default: target/release/gantry)
# Needs wrk (apt-get install wrk), curl and python3. Loopback only, 16 s of load.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/gantry}
command -v wrk >/dev/null || { echo "stack-wrk: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
name="stack-wrk-$$"
"$bin" up --users 3 --port "$port" --infra local --name "$name" >"$log" 2>&1 &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null; rm -f "$log"' EXIT
gw="http://127.0.0.1:$port"
for _ in $(seq 1 240); do curl -sf "$gw/readyz" >/dev/null && break; sleep 0.5; done
curl -sf "$gw/readyz" >/dev/null || { echo "stack-wrk: the stack is not ready after 120 s:" >&2; cat "$log" >&2; exit 1; }
user="wrk$$"
body="{\"username\":\"$user\",\"password\":\"correct-horse-battery\",\"display_name\":\"W\"}"
curl -sf -X POST "$gw/auth/register" -H 'content-type: application/json' -d "$body" >/dev/null
token=$(curl -sf -X POST "$gw/auth/login" -H 'content-type: application/json' -d "$body" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
registry=$(grep -o 'registry  http://[0-9.:]*' "$log" | awk '{print $2}')
registry_token=$(grep -A1 'registry  http' "$log" | tail -1 | awk '{print $1}')
instance=$(curl -sf -H "X-Consul-Token: $registry_token" "$registry/v1/health/service/user?passing" |
  python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["Service"]; print("%s:%s" % (s["Address"], s["Port"]))')
echo "== direct to $instance, 1 connection"
wrk -t1 -c1 -d8s --latency -H "Authorization: Bearer $token" "http://$instance/users/me" | grep -E ' 50%| 99%|Requests/sec|Non-2xx'
echo "== through the gateway, 16 connections"
wrk -t2 -c16 -d8s --latency -H "Authorization: Bearer $token" "$gw/users/me" | grep -E ' 50%| 99%|Requests/sec|Non-2xx'
