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
# The public API's documentation builds without a warning (broken links, links to private items).
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace -q || status=1
# The Debian package: built, installed, its unit's command run, removed (needs root, as CI and these machines are).
if [ "$(id -u)" = 0 ]; then
  bash scripts/package-test.sh || status=1
elif [ "${CI:-}" = true ]; then
  echo "CI=true but not root: the package test cannot run" >&2
  status=1
fi
exit "$status"
