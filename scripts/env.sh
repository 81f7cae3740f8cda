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
