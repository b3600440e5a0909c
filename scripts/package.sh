#!/usr/bin/env bash
# Builds the Debian package (cargo-deb, metadata in hactl/Cargo.toml): a release build of `hactl` and
# `hactl-fencer`, the systemd unit, /etc/hactl/hactl.yml, the examples under /usr/share/doc/hactl.
# Prints the .deb's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || bash scripts/install.sh >&2
cargo deb -p hactl >&2
ls -t target/debian/hactl_*.deb | head -1
