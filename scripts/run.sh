#!/usr/bin/env bash
# Sets up and runs ClinVault on this machine: builds the `clinvault` command, creates a vault in
# the default location (the platform data directory, or $CLINVAULT_VAULT) if there is none, and
# shows its status. The desktop app will replace this flow.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --locked -p clinvault-cli
bin=target/release/clinvault
if ! "$bin" status >/dev/null 2>&1; then
  echo "No vault yet: creating one. Choose the administrator's passphrase (15+ characters)."
  "$bin" init --admin "${CLINVAULT_ADMIN:-admin}"
fi
"$bin" status
echo
echo "The clinvault command is at $PWD/$bin (try: $bin --help)"
