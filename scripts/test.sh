#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian/Ubuntu machine, then runs all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh --test
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
# The tests call `python3`; make it the one with the independent SQLCipher client.
export PATH="$PWD/target/test-venv/bin:$PATH"
# The frontend's TypeScript and Svelte types, including the bindings generated from the Rust
# types (vite build does not type-check).
(cd ui && npm run --silent check)
cargo test --workspace --locked "$@"
