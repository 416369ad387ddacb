#!/usr/bin/env bash
# Sightline setup: system packages, npm dependencies, build, models and media.
# Idempotent: every step checks first and stays quiet when there is nothing to do.
#
# usage: scripts/setup.sh [--models-from DIR] [--media-from DIR]
#   --models-from DIR   copy the ONNX models from DIR instead of downloading them
#   --media-from DIR    copy the sample media from DIR instead of downloading them
# environment:
#   SIGHTLINE_MODELS_FROM, SIGHTLINE_MEDIA_FROM   same as the options above
#   SIGHTLINE_MODEL_DIR  (default: models)        where models are installed
#   SIGHTLINE_MEDIA_DIR  (default: media)         where media are installed
#   EXTRA_APT_PACKAGES                            more Debian packages to install (space-separated)
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "setup: $*" >&2; exit 1; }

# Resolve a folder given on the command line against the caller's working directory.
abs_dir() {
  [ -d "$1" ] || die "no such folder: $1"
  (cd "$1" && pwd)
}

models_from="${SIGHTLINE_MODELS_FROM:-}"
media_from="${SIGHTLINE_MEDIA_FROM:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --models-from) [ $# -ge 2 ] || die "--models-from needs a folder"; models_from="$2"; shift 2 ;;
    --models-from=*) models_from="${1#*=}"; shift ;;
    --media-from) [ $# -ge 2 ] || die "--media-from needs a folder"; media_from="$2"; shift 2 ;;
    --media-from=*) media_from="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[ -z "$models_from" ] || models_from="$(abs_dir "$models_from")"
[ -z "$media_from" ] || media_from="$(abs_dir "$media_from")"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# --- 1. Debian packages ----------------------------------------------------------------------
apt_packages=(
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-libav gstreamer1.0-tools
  build-essential python3 pkg-config fonts-dejavu-core
  # for the tests: a real RTSP server (GstRtspServer through python3-gi, x264enc)
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly
  # for the tests: a real Prometheus evaluating every dashboard panel
  prometheus
  # for the tests: the protocol documents' Python clients (OpenCV, websockets, aiohttp, requests) under Debian's python3
  python3-opencv python3-websockets python3-aiohttp python3-requests
  # for the tests: a real browser for /dashboard (driven by playwright-core) and a real NATS server
  chromium nats-server
)
# shellcheck disable=SC2206 # word splitting is intended
[ -z "${EXTRA_APT_PACKAGES:-}" ] || apt_packages+=(${EXTRA_APT_PACKAGES})

missing=()
for pkg in "${apt_packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo; install these packages first: ${missing[*]}"
    as_root=(sudo)
  fi
  ${as_root[@]+"${as_root[@]}"} apt-get update
  ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- 2. npm dependencies ---------------------------------------------------------------------
# onnxruntime-node's install script downloads CUDA binaries and fails offline; the CPU build is bundled.
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

# --- 3. build --------------------------------------------------------------------------------
npm run --silent build

# --- 4. models and media ---------------------------------------------------------------------
asset_args=(install --quiet
  --models-dir "${SIGHTLINE_MODEL_DIR:-models}"
  --media-dir "${SIGHTLINE_MEDIA_DIR:-media}")
[ -z "$models_from" ] || asset_args+=(--models-from "$models_from")
[ -z "$media_from" ] || asset_args+=(--media-from "$media_from")
node dist/bin/assets.js "${asset_args[@]}"
