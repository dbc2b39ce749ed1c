#!/usr/bin/env bash
# Installs what building and testing ClinVault needs on Debian/Ubuntu. Idempotent; safe to rerun.
# Usage: scripts/setup-deps.sh [--test]   (--test adds what the test suite needs)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: need root (or sudo) to install packages" >&2; exit 1
  fi
fi

# Build: a C compiler and OpenSSL headers for the bundled SQLCipher; WebKitGTK and GTK for the
# desktop app (Tauri 2), with librsvg, libxdo and the app-indicator library its bundler and tray
# support link against; file for the AppImage bundler; Node.js and npm build the frontend.
apt_pkgs=(build-essential pkg-config libssl-dev ca-certificates curl file
  libwebkit2gtk-4.1-dev libxdo-dev libayatana-appindicator3-dev librsvg2-dev)
command -v npm >/dev/null 2>&1 || apt_pkgs+=(nodejs npm)
# Tests: python3 with venv for the independent SQLCipher/SQLite clients; oathtool, an
# independent TOTP implementation; gnome-keyring, keyutils and dbus-daemon, real OS keyring
# services the keyring tests start privately.
# The desktop end-to-end tests: Xvfb (a virtual display) and WebKitWebDriver, which tauri-driver
# drives.
[ "$want_test" = 1 ] && apt_pkgs+=(python3 python3-venv python3-pip sqlite3 oathtool gnome-keyring keyutils dbus-daemon
  xvfb xauth webkit2gtk-driver)

missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing apt packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "==> installing the Rust toolchain (rustup)"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

if [ "$want_test" = 1 ]; then
  # A private virtualenv so the system Python stays untouched (PEP 668).
  venv="target/test-venv"
  if [ ! -x "$venv/bin/python3" ] || ! "$venv/bin/python3" -c "import sqlcipher3" 2>/dev/null; then
    echo "==> preparing $venv (sqlcipher3-binary: an independent SQLCipher 4 client)"
    mkdir -p target
    python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install -q --disable-pip-version-check sqlcipher3-binary
  fi
fi

# The frontend's packages (ui/package-lock.json; the tauri CLI is deliberately not in it — see
# README "Installers"). Reinstalled when the lock file is newer than the installed tree.
if [ ! -f ui/node_modules/.package-lock.json ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  echo "==> installing the frontend's npm packages (ui/)"
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
fi

[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
if [ "$want_test" = 1 ] && ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "==> installing tauri-driver (WebDriver for the desktop app's end-to-end tests)"
  cargo install tauri-driver --version '^2' --locked
fi
