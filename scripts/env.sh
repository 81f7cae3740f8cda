# Sourced by every script: pinned tool versions and the environment that keeps builds offline.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"

WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/"/,"",$3); print $3; exit}' "$ROOT/Cargo.lock" 2>/dev/null)"
WASM_BINDGEN_VERSION="${WASM_BINDGEN_VERSION:-0.2.130}"
WORKER_BUILD_VERSION="0.8.7"

# worker-build downloads these from GitHub unless told where they are.
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
export WASM_OPT_BIN="$ROOT/node_modules/binaryen/bin/wasm-opt"
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export NO_UPDATE_NOTIFIER=1

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# A stand-in `docker` for wrangler where there is no Docker daemon: it records each command in
# $DOCKER_STUB_LOG and succeeds. Wrangler builds the consumer's [[containers]] image (the fix
# executor) in `deploy --dry-run`, and in multi-config `wrangler dev` even with containers disabled
# (wrangler 4.86's multi-worker runtime ignores enable_containers when building images); neither
# needs the image. Usage: docker_stand_in DIR → prints the stand-in's path.
docker_stand_in() {
  mkdir -p "$1"
  cat > "$1/docker" <<'STUB'
#!/bin/sh
[ -n "${DOCKER_STUB_LOG:-}" ] && echo "docker $*" >> "$DOCKER_STUB_LOG"
case "$1" in
  # Wrangler writes the Dockerfile to `build -f -`'s stdin: read it all, or that write fails with
  # EPIPE whenever this stand-in exits first (seen on a loaded machine).
  build) cat > /dev/null ;;
  image) [ "${2:-}" = inspect ] && echo '[{"Id":"sha256:0","Size":1,"RootFS":{"Layers":["sha256:0"]}}]' ;;
esac
exit 0
STUB
  chmod +x "$1/docker"
  printf '%s\n' "$1/docker"
}

# consumer/wrangler.toml without its executor container block (between the `# >>> executor container`
# and `# <<< executor container` markers), written next to it so relative paths still resolve.
# Prints the new config's path (relative to $ROOT).
consumer_config_without_container() {
  local out="consumer/wrangler.no-container.toml"
  sed '/^# >>> executor container$/,/^# <<< executor container$/d' "$ROOT/consumer/wrangler.toml" > "$ROOT/$out"
  printf '%s\n' "$out"
}

# Base images built from Debian packages by scripts/base-images, for Docker hosts without an image
# registry; container/Dockerfile takes them as build arguments (its defaults are the public images).
DEBIAN_BASE_IMAGE="bugbot-local/debian:bookworm-slim"
BUILD_BASE_IMAGE="bugbot-local/build:bookworm"
BASE_IMAGE_BUILD_ARGS=(--build-arg "RUST_IMAGE=$BUILD_BASE_IMAGE" --build-arg "NODE_IMAGE=$BUILD_BASE_IMAGE"
  --build-arg "DEBIAN_IMAGE=$DEBIAN_BASE_IMAGE")
# The stand-in for wrangler's container network sidecar (scripts/sidecar-image).
SIDECAR_IMAGE="bugbot-local/container-sidecar:latest"

# True when Docker Hub answers (401 to an anonymous /v2/): then wrangler can pull the public base images
# and its container sidecar, and nothing local is needed.
image_registry_reachable() {
  [ "$(curl -s -o /dev/null -m 10 -w '%{http_code}' https://registry-1.docker.io/v2/ 2>/dev/null)" = 401 ]
}
