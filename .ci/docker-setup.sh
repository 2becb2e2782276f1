#!/usr/bin/env bash
# Give CI (or any offline Debian 12 host) a Docker engine and an offline CPU base image.
#
#   .ci/docker-setup.sh            # engine + base images; prints the base image name last
#
# No registry can be pulled from, so the base is built from scratch by images/base/build.sh, the
# recipe a GPU host uses too: debootstrap (Debian's mirror, as configured on the host) imported
# into the engine, then a venv with the CPU torch wheel pip finds on this host and the packages
# every image needs from pip's index. Everything is reused when present: the engine's images
# survive between CI runs on a machine.
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-inpaint-bench/base:cpu}
WORK=${WORK:-/var/tmp/inpaint-bench-docker}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$WORK"
say() { printf '[docker-setup] %s\n' "$*" >&2; }
timed() { local name=$1 start; shift; start=$(date +%s); "$@"; say "$name: $(( $(date +%s) - start )) s"; }

# Debian's 20.10 client talks to the engine's built-in BuildKit; a newer client without the
# buildx plugin would fall back to the legacy builder.
docker_cli() { if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker; fi; }

install_engine() {
  if command -v dockerd >/dev/null && command -v debootstrap >/dev/null && [ -x /usr/bin/docker ]; then
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io debootstrap >"$WORK/apt.log" 2>&1
}

start_engine() {
  local docker; docker=$(docker_cli)
  if "$docker" info >/dev/null 2>&1; then return 0; fi
  # No systemd here: start the daemon by hand, detached; it starts its own containerd.
  setsid -f dockerd >>"$WORK/dockerd.log" 2>&1 </dev/null
  for _ in $(seq 1 120); do "$docker" info >/dev/null 2>&1 && return 0; sleep 0.5; done
  say "dockerd did not start; see $WORK/dockerd.log"; return 1
}

timed "engine install" install_engine
timed "engine start" start_engine
# The same recipe a GPU host builds (images/base), with the CPU torch wheel found on this host.
timed "base image (images/base/build.sh --torch cpu)" \
  bash "$HERE/../images/base/build.sh" --torch cpu --tag "$BASE_IMAGE" >/dev/null
echo "$BASE_IMAGE"
