#!/usr/bin/env bash
# The Debian package on this machine, as root: built, installed (files, modes, the unit), the unit's own commands
# run without systemd (ExecStartPre, then ExecStart as the unit's User, with PATRONI_* in the environment as a
# systemd drop-in would set them) until the node serves as primary, then removed and purged: nothing of it left.
# Every process it starts is stopped by PID; the package is purged even when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "package-test: needs root (dpkg -i)" >&2; exit 1; }

deb=$(bash scripts/package.sh | tail -1)
echo "package-test: $deb ($(du -h "$deb" | cut -f1))"
tmp=$(mktemp -d /tmp/hactl-pkg.XXXXXX)
chmod 755 "$tmp"
chown postgres: "$tmp"
# The example config's socket directory, made as postgresql-common's tmpfiles would (and removed if made here).
made_run_dir=""
if [ ! -d /var/run/postgresql ]; then
  install -d -o postgres -g postgres -m 2775 /var/run/postgresql
  made_run_dir=1
fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  [ -f "$tmp/data/postmaster.pid" ] && kill -KILL "$(head -1 "$tmp/data/postmaster.pid")" 2>/dev/null || true
  pkill -KILL -f "hactl-fencer $tmp/data" 2>/dev/null || true
  dpkg -P hactl >/dev/null 2>&1 || true
  rm -rf "$tmp"
  [ -n "$made_run_dir" ] && rmdir /var/run/postgresql 2>/dev/null || true
}
trap cleanup EXIT
fail() { echo "package-test: FAILED: $*" >&2; [ -f "$tmp/hactl.log" ] && tail -30 "$tmp/hactl.log" >&2; exit 1; }

dpkg -s hactl >/dev/null 2>&1 && fail "hactl is already installed here: not touching it"
dpkg -i "$deb" >/dev/null

# What it installed.
unit=$(dpkg -L hactl | grep '/hactl.service$') || fail "no systemd unit"
for f in /usr/bin/hactl /usr/bin/hactl-fencer; do [ -x "$f" ] || fail "$f missing"; done
[ -f /usr/share/doc/hactl/examples/haproxy.cfg ] || fail "HAProxy example missing"
[ -f /usr/share/doc/hactl/examples/prometheus.yml ] || fail "Prometheus example missing"
[ -f /usr/share/doc/hactl/examples/alerts.yml ] || fail "Prometheus alert rules missing"
[ "$(stat -c '%a %G' /etc/hactl/hactl.yml)" = "640 postgres" ] || fail "/etc/hactl/hactl.yml: $(stat -c '%a %G' /etc/hactl/hactl.yml)"
grep -q '^Restart=always' "$unit" || fail "the unit does not restart"
grep -q '^User=postgres' "$unit" || fail "the unit does not run as postgres"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
/usr/bin/hactl --version | grep -qF "($commit)" || fail "--version: $(/usr/bin/hactl --version), want commit $commit"
echo "package-test: installed $(dpkg-query -W -f='${Version} ${Installed-Size} KiB' hactl); hactl $(stat -c %s /usr/bin/hactl) bytes, hactl-fencer $(stat -c %s /usr/bin/hactl-fencer) bytes"

# An etcd for the node, on free ports.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ec=$(port); ep=$(port); api=$(port); pg=$(port)
etcd --name pkg --data-dir "$tmp/etcd" --listen-client-urls "http://127.0.0.1:$ec" \
  --advertise-client-urls "http://127.0.0.1:$ec" --listen-peer-urls "http://127.0.0.1:$ep" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ep" --initial-cluster "pkg=http://127.0.0.1:$ep" \
  >"$tmp/etcd.log" 2>&1 &
pids+=($!)

# The unit's commands, as its User, with the node's addresses from PATRONI_* (what a drop-in would set).
user=$(sed -n 's/^User=//p' "$unit")
pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
start=$(sed -n 's/^ExecStart=//p' "$unit")
envs=(PATRONI_SCOPE="pkgtest$$" PATRONI_ETCD3_HOSTS="127.0.0.1:$ec"
      PATRONI_RESTAPI_LISTEN="127.0.0.1:$api" PATRONI_RESTAPI_CONNECT_ADDRESS="127.0.0.1:$api"
      PATRONI_POSTGRESQL_LISTEN="127.0.0.1:$pg" PATRONI_POSTGRESQL_CONNECT_ADDRESS="127.0.0.1:$pg"
      PATRONI_POSTGRESQL_DATA_DIR="$tmp/data" PATRONI_POSTGRESQL_PGPASS="$tmp/pgpass")
# shellcheck disable=SC2086
runuser -u "$user" -- env "${envs[@]}" $pre >"$tmp/validate.log" 2>&1 || fail "ExecStartPre: $(cat "$tmp/validate.log")"
# shellcheck disable=SC2086
runuser -u "$user" -- env "${envs[@]}" $start >"$tmp/hactl.log" 2>&1 &
pids+=($!)
daemon=$!
ok=""
for _ in $(seq 1 120); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api/primary")" = 200 ]; then ok=1; break; fi
  kill -0 "$daemon" 2>/dev/null || fail "the daemon exited"
  sleep 0.5
done
[ -n "$ok" ] || fail "the node never served as primary"
pgrep -f "hactl-fencer $tmp/data" >/dev/null || fail "no hactl-fencer running beside the daemon"
echo "package-test: the unit's command runs a primary (REST 127.0.0.1:$api, PostgreSQL 127.0.0.1:$pg)"
# runuser forwards SIGTERM to the daemon, which stops PostgreSQL and releases the lock.
kill -TERM "$daemon"
for _ in $(seq 1 60); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.5; done
kill -0 "$daemon" 2>/dev/null && fail "the daemon did not stop on SIGTERM"
[ -f "$tmp/data/postmaster.pid" ] && fail "PostgreSQL still running after the daemon stopped"

# Removed, then purged: nothing left.
dpkg -r hactl >/dev/null
[ -e /usr/bin/hactl ] && fail "/usr/bin/hactl left after dpkg -r"
[ -f /etc/hactl/hactl.yml ] || fail "the conffile should stay until purge"
dpkg -P hactl >/dev/null
for f in /usr/bin/hactl /usr/bin/hactl-fencer /etc/hactl "$unit" /usr/share/doc/hactl; do
  [ -e "$f" ] && fail "$f left after purge"
done
dpkg -s hactl >/dev/null 2>&1 && fail "dpkg still knows hactl"
echo "package-test: 1 passed, 0 failed"
