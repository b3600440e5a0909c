#!/usr/bin/env bash
# The test command: installs what is missing, then builds and runs every test of the workspace.
# README command two; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export CARGO_TERM_COLOR=never
cargo build --workspace --all-targets
# The end-to-end scenarios append their figures here; start from an empty table.
results="${CARGO_TARGET_DIR:-target}/tmp/e2e-results.jsonl"
rm -f "$results"
status=0
cargo test --workspace --no-fail-fast || status=$?
cargo run -q -p hactl-examples --bin e2e_table -- "$results"
exit "$status"
