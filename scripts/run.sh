#!/usr/bin/env bash
# Sets up and runs ClinVault on this machine: installs what building needs, builds the desktop
# app (frontend and Tauri shell, release mode) and starts it. On first start the app walks you
# through creating the vault in the default location (the platform data directory), or in
# $CLINVAULT_VAULT when set.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --locked -p clinvault-desktop --features tauri/custom-protocol
bin="${CARGO_TARGET_DIR:-target}/release/clinvault-desktop"
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "error: no display to open the window on (DISPLAY/WAYLAND_DISPLAY unset); the app is built at $bin" >&2
  echo "       to try it without a desktop: xvfb-run -a $bin" >&2
  exit 1
fi
exec "$bin" "$@"
