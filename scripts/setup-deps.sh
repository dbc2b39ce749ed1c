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
[ "$want_test" = 1 ] && apt_pkgs+=(python3 python3-venv python3-pip sqlite3 oathtool gnome-keyring keyutils dbus-daemon)
# Sync tests: real storage servers on 127.0.0.1 (OpenSSH's sshd for SFTP, rclone for WebDAV,
# openssl for the throwaway TLS CA); restic and borg for the side-by-side sync benchmark.
[ "$want_test" = 1 ] && apt_pkgs+=(openssh-server openssh-client rclone openssl restic borgbackup)
# The desktop end-to-end tests: Xvfb (a virtual display) and WebKitWebDriver, which tauri-driver
# drives.
[ "$want_test" = 1 ] && apt_pkgs+=(xvfb xauth webkit2gtk-driver)
# poppler's pdftotext reads the subject-access PDF in the tests, independently of our writer.
[ "$want_test" = 1 ] && apt_pkgs+=(poppler-utils)

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

if [ "$want_test" = 1 ] && ! command -v s3s-fs >/dev/null 2>&1; then
  # An S3 server for the sync tests (0.14.1: later versions need a newer rustc than ours).
  echo "==> installing s3s-fs (S3 test server)"
  cargo install s3s-fs@0.14.1 --locked --features binary --quiet
fi

if [ "$want_test" = 1 ]; then
  # A private virtualenv so the system Python stays untouched (PEP 668).
  venv="target/test-venv"
  # sqlcipher3-binary: an independent SQLCipher 4 client; pycryptodome and argon2-cffi: standard
  # crypto libraries that decrypt a backup by the published format, without ClinVault code.
  # fhir.resources 5.1.1 is the last release whose models are FHIR R4 (4.0.1); 6.x moved to
  # R4B and 7.x to R5. It validates the subject-access export independently of our code;
  # icalendar parses the calendar exports (RFC 5545); aiosmtpd is the SMTP server the
  # notification tests start on 127.0.0.1; Pillow (its wheels carry OpenJPEG) writes the JPEG 2000
  # image of the scanned letter the viewer test draws.
  py_pkgs=(sqlcipher3-binary pycryptodome argon2-cffi "fhir.resources==5.1.1" "icalendar>=6,<8" "aiosmtpd==1.4.6" "pillow>=10,<12")
  if [ ! -x "$venv/bin/python3" ] \
    || ! "$venv/bin/python3" -c "import sqlcipher3, Crypto, argon2, icalendar, aiosmtpd, PIL" 2>/dev/null \
    || ! "$venv/bin/python3" -c "import fhir.resources, sys; sys.exit(fhir.resources.__fhir_version__ != '4.0.1')" 2>/dev/null; then
    echo "==> preparing $venv (${py_pkgs[*]})"
    mkdir -p target
    [ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install -q --disable-pip-version-check "${py_pkgs[@]}"
  fi
fi

# The frontend's packages (ui/package-lock.json; the tauri CLI is deliberately not in it — see
# README "Installers"). Reinstalled when the lock file is newer than the installed tree.
if [ ! -f ui/node_modules/.package-lock.json ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  echo "==> installing the frontend's npm packages (ui/)"
  # `npm install --no-save` rather than `npm ci`: the registry this project uses serves only this
  # platform's optional packages (rollup's native builds), so the lock file lists no others and
  # `npm ci` refuses it as out of sync; `--no-save` installs the locked versions and leaves the
  # lock file untouched.
  (cd ui && npm install --no-save --no-audit --no-fund --loglevel=error)
fi

[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
if [ "$want_test" = 1 ] && ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "==> installing tauri-driver (WebDriver for the desktop app's end-to-end tests)"
  cargo install tauri-driver --version '^2' --locked
fi
