#!/usr/bin/env bash
# Build the base every inpaint-bench image starts FROM; print its tag last.
#
#   images/base/build.sh                 # GPU host: inpaint-bench/base:cuda (PyPI's CUDA torch)
#   images/base/build.sh --torch cpu     # offline/CPU host: inpaint-bench/base:cpu (local CPU wheel)
#
# Two images, both made here from sources that can be checked, with no registry pull:
#   1. the root, inpaint-bench/root:bookworm: a minimal Debian 12 with Python 3.11 made by
#      debootstrap, which verifies Debian's signed Release files against the archive keyring, and
#      imported into the engine;
#   2. the base: images/base/Dockerfile on that root (venv, torch, shared packages), labelled with
#      the sha256 of this folder, so a changed recipe is rebuilt and an unchanged one reused.
# Needs root (debootstrap), a Docker engine with BuildKit, and Debian's mirror plus pip's index.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TORCH=cuda
TAG=""
ROOT_IMAGE=${ROOT_IMAGE:-inpaint-bench/root:bookworm}
SUITE=bookworm
WORK=${WORK:-/var/tmp/inpaint-bench-docker}
MIRROR=${MIRROR:-}
while [ $# -gt 0 ]; do
  case $1 in
    --torch) TORCH=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --root) ROOT_IMAGE=$2; shift 2 ;;
    --mirror) MIRROR=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "images/base/build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $TORCH in cpu|cuda) ;; *) echo "--torch: expected cpu or cuda, got $TORCH" >&2; exit 2 ;; esac
TAG=${TAG:-inpaint-bench/base:$TORCH}
mkdir -p "$WORK"
say() { printf '[base] %s\n' "$*" >&2; }
# Debian's 20.10 client has the engine's BuildKit; a newer client without buildx would silently
# fall back to the legacy builder, which has no RUN --mount.
docker_cli() { if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker; fi; }
DOCKER=$(docker_cli)
has_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

host_mirror() {  # the host's Debian mirror for $SUITE (deb822 sources), else Debian's own
  local found
  found=$(awk -v s="$SUITE" '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i==s){print u; exit}}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
  echo "${found:-http://deb.debian.org/debian}"
}

build_root() {
  if has_image "$ROOT_IMAGE"; then return 0; fi
  command -v debootstrap >/dev/null || {
    say "debootstrap is missing: apt-get install debootstrap (and debian-archive-keyring on Ubuntu)"
    return 1
  }
  local rootfs=$WORK/rootfs-$SUITE mirror=${MIRROR:-$(host_mirror)}
  if [ ! -e "$rootfs/usr/bin/python3" ]; then
    rm -rf "$rootfs"
    say "debootstrap $SUITE from $mirror (log: $WORK/debootstrap.log)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$SUITE" "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
      { tail -20 "$WORK/debootstrap.log" >&2; return 1; }
  fi
  # apt lists and caches stay out of the image (about 80 MB)
  tar -C "$rootfs" --numeric-owner --exclude='./var/lib/apt/lists/*_*' \
      --exclude='./var/cache/apt/*.bin' --exclude='./var/cache/apt/archives/*.deb' -c . |
    "$DOCKER" import -c 'CMD ["/bin/bash"]' -c 'ENV LANG=C.UTF-8' - "$ROOT_IMAGE" >/dev/null
}

cpu_wheel() {  # the CPU torch wheel for cp311 that pip's find-links offer on this host
  local d found
  for d in $(pip config list 2>/dev/null | sed -n "s/.*find-links='\(.*\)'/\1/p") /opt/wheels; do
    d=${d#file://}
    found=$(find "$d" -maxdepth 1 -name 'torch-*+cpu-cp311-*x86_64.whl' 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$found" ]; then echo "$found"; return 0; fi
  done
  return 1
}

recipe_digest() {  # what the base is made from: this folder's files, and the variant
  (cd "$HERE" && find . -type f ! -name '*.pyc' | LC_ALL=C sort | xargs sha256sum; echo "$TORCH") |
    sha256sum | cut -c1-64
}

build_base() {
  local recipe ctx wheel version minor ca
  recipe=$(recipe_digest)
  if has_image "$TAG" && [ "$("$DOCKER" image inspect -f \
      '{{index .Config.Labels "dev.inpaint-bench.base.recipe"}}' "$TAG")" = "$recipe" ]; then
    say "$TAG is up to date with images/base (recipe ${recipe:0:12})"
    return 0
  fi
  ctx=$WORK/ctx-base-$TORCH
  rm -rf "$ctx"; mkdir -p "$ctx"; cp -r "$HERE"/. "$ctx"/
  if [ "$TORCH" = cpu ]; then
    wheel=$(cpu_wheel) || { say "no CPU torch wheel for cp311 in pip's find-links or /opt/wheels"; return 1; }
    mkdir -p "$ctx/wheels"
    ln -f "$wheel" "$ctx/wheels/" 2>/dev/null || cp "$wheel" "$ctx/wheels/"
    version=$(basename "$wheel" | cut -d- -f2); minor=$(echo "$version" | cut -d. -f2)
    # torchvision 0.(minor+15) matches torch 2.minor; pinning both keeps pip off CUDA torch.
    printf 'torch==%s\ntorchvision==0.%s.*\n' "$version" "$((minor + 15))" >"$ctx/torch-cpu.txt"
  fi
  ca=${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}
  [ -f "$ca" ] || ca=/etc/ssl/certs/ca-certificates.crt
  say "building $TAG (torch $TORCH; log: $WORK/build-base-$TORCH.log)"
  DOCKER_BUILDKIT=1 "$DOCKER" build --progress plain --secret id=pipca,src="$ca" \
    --build-arg ROOT_IMAGE="$ROOT_IMAGE" --build-arg TORCH="$TORCH" \
    --label dev.inpaint-bench.base.recipe="$recipe" -t "$TAG" "$ctx" \
    >"$WORK/build-base-$TORCH.log" 2>&1 || { tail -40 "$WORK/build-base-$TORCH.log" >&2; return 1; }
  rm -rf "$ctx"
}

start=$(date +%s); build_root; say "root image: $(( $(date +%s) - start )) s"
start=$(date +%s); build_base; say "base image: $(( $(date +%s) - start )) s"
echo "$TAG"
