# shellcheck shell=bash
# What the smoke scripts share, sourced by each after it sets SMOKE_NAME (its log lines' tag):
# log and fail, an engine and compose ready (smoke_engine IMAGE...: the images the local engine
# stand-in must provide, when there is no engine and ../shared/tools/docker-engine.sh starts
# one), and distinct free loopback ports (free_ports N).

log() { printf '[%s %(%H:%M:%S)T] %s\n' "$SMOKE_NAME" -1 "$*"; }
fail() {
  log "FAIL: $*"
  exit 1
}

smoke_engine() {
  if ! docker info >/dev/null 2>&1; then
    local engine=${DOCKER_ENGINE_TOOL:-../shared/tools/docker-engine.sh}
    [ -f "$engine" ] || fail "no Docker engine answers and $engine is absent"
    eval "$(bash "$engine" start "$@")"
  fi
  docker compose version >/dev/null || fail "the docker compose plugin is missing"
}

# N distinct free loopback ports, on one line
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))' "$1"
}
