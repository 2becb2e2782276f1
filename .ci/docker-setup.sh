#!/usr/bin/env bash
# Give CI (or any offline Debian 12 host) a Docker engine and an offline CPU base image.
#
#   .ci/docker-setup.sh            # engine + base images; prints the base image name last
#
# No registry can be pulled from, so the base is built from scratch: debootstrap (Debian's own
# mirror, as configured on the host) with Python, imported into the engine, then a venv with the
# CPU torch wheel pip finds on this host and the packages every image needs from pip's index.
# Everything is reused when present: the engine's images survive between CI runs on a machine.
set -euo pipefail

SUITE=bookworm
BASE_IMAGE=${BASE_IMAGE:-local/inpaint-bench-base:py311-torch-cpu}
ROOT_IMAGE=local/inpaint-bench-root:$SUITE
WORK=${WORK:-/var/tmp/inpaint-bench-docker}
HERE=$(cd "$(dirname "$0")" && pwd)
PACKAGES="numpy pillow jsonschema scipy scikit-image lpips opencv-python-headless einops"
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

has_image() { "$(docker_cli)" image inspect "$1" >/dev/null 2>&1; }

mirror() {  # the host's Debian mirror for $SUITE (deb822 sources)
  awk -v s="$SUITE" '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i==s){print u; exit}}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1
}

root_image() {
  has_image "$ROOT_IMAGE" && return 0
  local rootfs=$WORK/rootfs m; m=$(mirror)
  [ -n "$m" ] || { say "no $SUITE mirror in /etc/apt/sources.list.d"; return 1; }
  if [ ! -e "$rootfs/usr/bin/python3" ]; then
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$SUITE" "$rootfs" "$m" >"$WORK/debootstrap.log" 2>&1
  fi
  # apt lists and caches stay out of the image (about 80 MB)
  tar -C "$rootfs" --numeric-owner --exclude='./var/lib/apt/lists/*_*' \
      --exclude='./var/cache/apt/*.bin' --exclude='./var/cache/apt/archives/*.deb' -c . |
    "$(docker_cli)" import -c 'CMD ["/bin/bash"]' -c 'ENV LANG=C.UTF-8' - "$ROOT_IMAGE" >/dev/null
}

torch_wheel() {  # the CPU torch wheel pip's find-links offer on this host
  local d found
  for d in $(pip config list 2>/dev/null | sed -n "s/.*find-links='\(.*\)'/\1/p") /opt/wheels; do
    d=${d#file://}
    found=$(find "$d" -maxdepth 1 -name 'torch-*+cpu-cp311-*x86_64.whl' 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$found" ]; then echo "$found"; return 0; fi
  done
  return 1
}

base_image() {
  has_image "$BASE_IMAGE" && return 0
  local ctx=$WORK/ctx-base wheel version minor ca
  rm -rf "$ctx"; mkdir -p "$ctx/wheels"
  wheel=$(torch_wheel); [ -f "$wheel" ] || { say "no CPU torch wheel for cp311 found"; return 1; }
  ln -f "$wheel" "$ctx/wheels/" 2>/dev/null || cp "$wheel" "$ctx/wheels/"
  version=$(basename "$wheel" | cut -d- -f2); minor=$(echo "$version" | cut -d. -f2)
  # torchvision 0.(minor+15) matches torch 2.minor; pinning both keeps pip off CUDA torch builds.
  printf 'torch==%s\ntorchvision==0.%s.*\n' "$version" "$((minor + 15))" >"$ctx/constraints.txt"
  cp "$HERE/base/fix_torchvision.py" "$ctx/"
  ca=$(pip config get global.cert 2>/dev/null || true); [ -f "$ca" ] || ca=/etc/ssl/certs/ca-certificates.crt
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $ROOT_IMAGE
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN --mount=type=bind,source=.,target=/ctx \\
    --mount=type=secret,id=pipca,target=/etc/pip-ca.crt \\
    set -eux; python3 -m venv /opt/venv; \\
    export PIP_CERT=/etc/pip-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1; \\
    pip install -c /ctx/constraints.txt /ctx/wheels/torch-*.whl; \\
    pip install -c /ctx/constraints.txt torchvision $PACKAGES; \\
    python /ctx/fix_torchvision.py; \\
    python -c "import torch, torchvision, lpips, cv2, skimage; print('torch', torch.__version__)"
DOCKERFILE
  DOCKER_BUILDKIT=1 "$(docker_cli)" build --progress plain --secret id=pipca,src="$ca" \
    -t "$BASE_IMAGE" "$ctx" >"$WORK/build-base.log" 2>&1 || { tail -40 "$WORK/build-base.log" >&2; return 1; }
}

timed "engine install" install_engine
timed "engine start" start_engine
timed "root image (debootstrap + import)" root_image
timed "base image (python + torch cpu)" base_image
echo "$BASE_IMAGE"
