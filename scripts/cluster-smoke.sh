#!/usr/bin/env bash
# Cluster smoke run: docker-compose.cluster.yml with its host-network override for real:
# PostgreSQL, 2 API replicas, a training worker and nginx in front, all up (healthy where
# checked); through nginx, a training and predictions that both replicas serve (each one's
# /metrics), the request id passed through; a training job queued through nginx, run by the
# worker, its events streamed to the end; one replica SIGKILLed and predictions through nginx
# still answered; then everything removed.
#
#   bash scripts/cluster-smoke.sh
#
# Needs `docker` with the compose plugin and a running engine with the images python:3.11-slim,
# postgres:16 and nginx:1.27 (on a machine where ../shared/tools/docker-engine.sh exists and no
# engine answers, it starts that one with local stand-ins). Builds the service's image as
# SMOKE_IMAGE (logreg-service:smoke, the tag scripts/docker-smoke.sh builds: its layers are
# reused). A unique compose project, free loopback ports and a generated password file, so it
# clashes with nothing else; containers and volumes are removed even when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE_NAME=cluster-smoke
# shellcheck source=scripts/smoke-common.sh
. scripts/smoke-common.sh
smoke_engine python:3.11-slim postgres:16 nginx:1.27

started=$SECONDS
PROJECT="logreg-cluster-smoke-$$-$RANDOM"
WORK=$(mktemp -d)
read -r PGPORT API_PORT API_PORT_2 HTTP_PORT < <(free_ports 4)
# the password comes from a file, as in production (.env.cluster); a fresh one per run
password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
printf 'POSTGRES_PASSWORD=%s\nPGPASSWORD=%s\n' "$password" "$password" >"$WORK/env"
export PGPORT API_PORT API_PORT_2 HTTP_PORT CLUSTER_ENV_FILE="$WORK/env" WORKERS=1
export IMAGE=${SMOKE_IMAGE:-logreg-service:smoke}
compose() {
  docker compose --progress quiet -p "$PROJECT" -f docker-compose.cluster.yml \
    -f docker-compose.cluster.host.yml "$@"
}
URL=http://127.0.0.1:$HTTP_PORT

cleanup() {
  status=$?
  if [ "$status" -ne 0 ]; then
    log "logs of the failed run:"
    compose logs --no-color --tail 40 2>&1 || true
  fi
  compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
  rm -rf "$WORK"
  if [ "$status" -eq 0 ]; then log "PASS in $((SECONDS - started)) s"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$WORK/client.py" <<'PY'
import json
import re
import sys
import urllib.error
import urllib.request

ROWS = [[0.5, 8.0], [1.0, 6.5], [1.5, 7.0], [2.0, 5.0], [3.0, 7.5], [3.5, 6.0], [4.0, 8.0], [5.0, 7.0]]
LABELS = ["fail", "fail", "fail", "pass", "fail", "pass", "pass", "pass"]


def call(method, url, body=None, headers=()):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


cmd, base = sys.argv[1], sys.argv[2]
if cmd == "train":  # prints the new model's id
    status, _, raw = call("POST", base + "/train", {"features": ROWS, "labels": LABELS, "name": "smoke"})
    if status != 201:
        sys.exit(f"train: HTTP {status}: {raw[:300]!r}")
    print(json.loads(raw)["id"])
elif cmd == "predict":  # N predictions, each with its own request id, which must come back
    model_id, n = sys.argv[3], int(sys.argv[4])
    for i in range(n):
        rid = f"cluster-smoke-{i}"
        status, headers, raw = call(
            "POST", base + "/predict", {"model_id": model_id, "features": [[1.0, 7.0]]}, [("X-Request-ID", rid)]
        )
        if status != 200:
            sys.exit(f"predict {i}: HTTP {status}: {raw[:300]!r}")
        if headers.get("x-request-id") != rid:
            sys.exit(f"predict {i}: X-Request-ID {headers.get('x-request-id')!r}, sent {rid!r}")
elif cmd == "job":  # a training queued with Prefer: respond-async, watched through its events
    status, _, raw = call(
        "POST", base + "/train", {"features": ROWS, "labels": LABELS}, [("Prefer", "respond-async")]
    )
    if status != 202:
        sys.exit(f"train async: HTTP {status}: {raw[:300]!r}")
    job = json.loads(raw)["id"]
    with urllib.request.urlopen(base + f"/jobs/{job}/events", timeout=120) as stream:
        events = [line[7:].strip() for line in stream if line.startswith(b"event: ")]
    status, _, raw = call("GET", base + f"/jobs/{job}")
    record = json.loads(raw)
    if events[-1:] != [b"succeeded"] or record["status"] != "succeeded":
        sys.exit(f"job {job}: events {events}, record {record}")
    print(record["runner"])
elif cmd == "rows":  # the rows this replica predicted with the model (its own /metrics)
    _, _, raw = call("GET", base + "/metrics")
    m = re.search(r'^logreg_predicted_rows_total\{model_id="%s"\} (\S+)$' % sys.argv[3], raw.decode(), re.M)
    print(int(float(m.group(1))) if m else 0)
PY
client() { python3 "$WORK/client.py" "$@"; }

log "project $PROJECT, image $IMAGE; nginx :$HTTP_PORT, replicas :$API_PORT and :$API_PORT_2, PostgreSQL :$PGPORT"
t=$SECONDS
compose build --quiet api
log "image built in $((SECONDS - t)) s"
t=$SECONDS
compose up -d --wait --wait-timeout 180
log "PostgreSQL, 2 replicas, a worker and nginx up and healthy in $((SECONDS - t)) s"

# the replicas reach the database with the password from the file only: the URL has none
compose exec -T api python -c "import os, urllib.parse as u; assert u.urlsplit(os.environ['MODEL_STORE_URL']).password is None" ||
  fail "MODEL_STORE_URL carries a password"

MODEL=$(client train "$URL")
client predict "$URL" "$MODEL" 10
one=$(client rows "http://127.0.0.1:$API_PORT" "$MODEL")
two=$(client rows "http://127.0.0.1:$API_PORT_2" "$MODEL")
[ "$one" -gt 0 ] && [ "$two" -gt 0 ] && [ $((one + two)) = 10 ] ||
  fail "10 predictions through nginx: replica 1 served $one rows, replica 2 $two"
log "trained $MODEL through nginx; 10 predictions served $one + $two by the replicas, request ids kept"

runner=$(client job "$URL")
workers=$(compose ps -q worker | wc -l)
log "a training queued through nginx ran on a worker ($runner; $workers running), its events streamed to 'succeeded'"

docker kill --signal KILL "$(compose ps -q api-2)" >/dev/null
client predict "$URL" "$MODEL" 10
log "replica 2 SIGKILLed: 10 more predictions through nginx all answered"
