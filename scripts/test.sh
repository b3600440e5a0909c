#!/usr/bin/env bash
# The test command: installs what is missing, then builds and runs every test of the workspace.
# README command two; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export CARGO_TERM_COLOR=never
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
