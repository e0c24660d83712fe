#!/usr/bin/env bash
# Docker smoke run: builds the image, starts it with compose, trains and predicts through it,
# checks a second replica over the same volume, restarts and recreates the container and checks
# the models survived in the volume (identical predictions), then tears everything down.
#
#   bash scripts/docker-smoke.sh
#
# Needs `docker` with the compose plugin and a running engine (DOCKER_HOST); on a machine where
# ../shared/tools/docker-engine.sh exists and no engine answers, it starts that one. Uses the
# host-network override (docker-compose.host.yml), a unique compose project and free loopback
# ports, so it does not clash with anything else running. The image is kept (as
# logreg-service:smoke) so that the next run reuses its layers; containers, the network and the
# model volume are removed even when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE_NAME=docker-smoke
# shellcheck source=scripts/smoke-common.sh
. scripts/smoke-common.sh
# shellcheck disable=SC2119 # no images named: the engine tool's own
smoke_engine

started=$SECONDS
PROJECT="logreg-smoke-$$-$RANDOM"
read -r PORT PORT2 < <(free_ports 2)
export PORT IMAGE=${SMOKE_IMAGE:-logreg-service:smoke} WORKERS=2
compose() { docker compose --progress quiet -p "$PROJECT" -f docker-compose.yml -f docker-compose.host.yml "$@"; }
URL=http://127.0.0.1:$PORT
URL2=http://127.0.0.1:$PORT2
REPLICA=$PROJECT-replica2
WORK=$(mktemp -d)

cleanup() {
  status=$?
  if [ "$status" -ne 0 ]; then
    log "logs of the failed run:"
    compose logs --no-color --tail 60 2>&1 || true
    docker logs --tail 30 "$REPLICA" 2>&1 || true
  fi
  docker rm -f -v "$REPLICA" >/dev/null 2>&1 || true
  compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
  rm -rf "$WORK"
  if [ "$status" -eq 0 ]; then log "PASS in $((SECONDS - started)) s"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A small HTTP client on the standard library (the host may have no curl; the image has none).
cat >"$WORK/client.py" <<'PY'
import json
import re
import sys
import time
import urllib.error
import urllib.request

ROWS = [[0.5, 8.0], [1.0, 6.5], [1.5, 7.0], [2.0, 5.0], [3.0, 7.5], [3.5, 6.0], [4.0, 8.0], [5.0, 7.0]]
LABELS = ["fail", "fail", "fail", "pass", "fail", "pass", "pass", "pass"]
IRIS_LIKE = [[5.1, 3.5], [4.9, 3.0], [6.4, 3.2], [6.9, 3.1], [6.3, 3.3], [7.1, 3.0], [5.0, 3.6], [6.5, 2.8], [5.8, 2.7]]
IRIS_LABELS = [0, 0, 1, 1, 2, 2, 0, 1, 2]


def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def expect(status, want, what, raw):
    if status != want:
        sys.exit(f"{what}: HTTP {status}, expected {want}: {raw[:300]!r}")


cmd, base = sys.argv[1], sys.argv[2]
if cmd == "wait":  # until /health answers 200
    deadline = time.monotonic() + float(sys.argv[3])
    while True:
        try:
            if call("GET", base + "/health")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{base}/health did not answer within {sys.argv[3]} s")
        time.sleep(0.5)
elif cmd == "train":  # prints the new model's id
    kind = sys.argv[3]
    rows, labels = (ROWS, LABELS) if kind == "binary" else (IRIS_LIKE, IRIS_LABELS)
    status, raw = call("POST", base + "/train", {"features": rows, "labels": labels, "name": f"smoke-{kind}"})
    expect(status, 201, "train", raw)
    print(json.loads(raw)["id"])
elif cmd == "predict":  # prints the answer as canonical JSON, to compare runs byte for byte
    model_id, kind = sys.argv[3], sys.argv[4]
    rows = [[1.0, 7.0], [4.5, 6.5], [2.5, 6.0]] if kind == "binary" else [[5.0, 3.4], [6.7, 3.0], [6.0, 2.9]]
    status, raw = call("POST", base + "/predict", {"model_id": model_id, "features": rows})
    expect(status, 200, "predict", raw)
    answer = json.loads(raw)
    probs = answer["probabilities"]
    if len(probs) != 3 or any(abs(sum(p) - 1) > 1e-9 for p in probs):
        sys.exit(f"predict: implausible probabilities {probs}")
    print(json.dumps(answer, sort_keys=True))
elif cmd == "status":  # GET path and check the status code
    path, want = sys.argv[3], int(sys.argv[4])
    status, raw = call("GET", base + path)
    expect(status, want, f"GET {path}", raw)
elif cmd == "docs":  # the docs page and every asset it loads from this server (package data)
    local = 0
    for page in ("/docs", "/redoc"):
        status, raw = call("GET", base + page)
        if page == "/redoc" and status == 404:
            continue
        expect(status, 200, f"GET {page}", raw)
        for ref in re.findall(r'(?:src|href)\s*=\s*["\'](/[^/"\'][^"\']*)["\']', raw.decode()):
            status, body = call("GET", base + ref)
            expect(status, 200, f"GET {ref} (loaded by {page})", body)
            local += 1
    print(local)
elif cmd == "optional":  # a route some versions have: absent (404) or answering 200
    status, raw = call("GET", base + sys.argv[3])
    if status != 404:
        expect(status, 200, f"GET {sys.argv[3]}", raw)
    print("absent" if status == 404 else "200")
elif cmd == "delete":
    status, raw = call("DELETE", base + "/models/" + sys.argv[3])
    expect(status, 204, "delete", raw)
elif cmd == "gone":  # predicting with a deleted model answers 404
    status, raw = call("POST", base + "/predict", {"model_id": sys.argv[3], "features": [[1.0, 2.0]]})
    expect(status, 404, "predict with a deleted model", raw)
elif cmd == "count":  # prints how many models GET /models reports
    status, raw = call("GET", base + "/models")
    expect(status, 200, "list", raw)
    print(json.loads(raw)["total"])
PY
client() { python3 "$WORK/client.py" "$@"; }

wait_healthy() { # container-name timeout: Docker's own health status, set by the image's HEALTHCHECK
  local deadline=$((SECONDS + $2)) state
  while :; do
    state=$(docker inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null || echo missing)
    [ "$state" = healthy ] && return 0
    [ $SECONDS -ge $deadline ] && fail "$1 is '$state' after $2 s"
    sleep 1
  done
}

log "project $PROJECT, image $IMAGE, ports $PORT and $PORT2"
t=$SECONDS
compose build --quiet api
log "image built in $((SECONDS - t)) s: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"

t=$SECONDS
compose up -d --wait --wait-timeout 120 api
CID=$(compose ps -q api)
log "container $CID up and healthy in $((SECONDS - t)) s"

# The image's promises: a non-root user, a read-only root file system, the configured workers.
uid=$(docker exec "$CID" id -u)
[ "$uid" != 0 ] || fail "the service runs as root"
[ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$CID")" = true ] || fail "the root file system is writable"
caps=$(docker exec "$CID" sh -c "awk '/^CapBnd/ {print \$2}' /proc/self/status")
[ "$caps" = 0000000000000000 ] || fail "the container keeps capabilities $caps"
docker exec "$CID" sh -c 'touch /data/models/.w && rm /data/models/.w' || fail "the model volume is not writable"
workers=$(compose logs --no-color api | grep -c 'Started server process' || true)
[ "$workers" = "$WORKERS" ] || fail "expected $WORKERS uvicorn workers, the log shows $workers"
log "runs as uid $uid without capabilities, read-only root file system, $workers workers"

client status "$URL" /health 200
client status "$URL" /openapi.json 200
assets=$(client docs "$URL")
log "docs page and its $assets local assets served; /metrics: $(client optional "$URL" /metrics)"
client status "$URL" /models/0123456789abcdef0123456789abcdef 404

BIN=$(client train "$URL" binary)
MULTI=$(client train "$URL" multi)
client predict "$URL" "$BIN" binary >"$WORK/bin.json"
client predict "$URL" "$MULTI" multi >"$WORK/multi.json"
log "trained $BIN (2 classes) and $MULTI (3 classes); predictions: $(cut -c1-120 "$WORK/bin.json")..."

same_answers() { # url label
  client predict "$1" "$BIN" binary | cmp -s - "$WORK/bin.json" || fail "$2: binary model predicts differently"
  client predict "$1" "$MULTI" multi | cmp -s - "$WORK/multi.json" || fail "$2: 3-class model predicts differently"
}

# A second replica over the same volume (compose run: same service definition, another port).
compose run -d --no-deps --name "$REPLICA" -e UVICORN_PORT="$PORT2" -e UVICORN_WORKERS=1 api >/dev/null
client wait "$URL2" 90
same_answers "$URL2" "second replica"
OTHER=$(client train "$URL2" binary)
client status "$URL" "/models/$OTHER" 200
[ "$(client count "$URL")" = 3 ] || fail "replica 1 does not list the 3 models"
# a model deleted through one replica is gone for the other, even one that just served it
DOOMED=$(client train "$URL" binary)
client predict "$URL" "$DOOMED" binary >/dev/null
client predict "$URL2" "$DOOMED" binary >/dev/null
client delete "$URL2" "$DOOMED"
client gone "$URL" "$DOOMED"
docker rm -f -v "$REPLICA" >/dev/null
log "second replica on port $PORT2: same predictions, its training listed by the first, a deletion seen by both"

t=$SECONDS
compose restart --timeout 10 api
client wait "$URL" 90
same_answers "$URL" "after restart"
log "restarted in $((SECONDS - t)) s: same predictions"

# Recreate the container: only the named volume carries the models over.
t=$SECONDS
compose down --timeout 10
compose up -d --wait --wait-timeout 120 api
[ "$(compose ps -q api)" != "$CID" ] || fail "the container was not recreated"
same_answers "$URL" "after recreating the container"
[ "$(client count "$URL")" = 3 ] || fail "the 3 models are not all listed after recreating the container"
log "recreated the container in $((SECONDS - t)) s: 3 models kept in the volume, same predictions"
