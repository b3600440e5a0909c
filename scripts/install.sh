#!/usr/bin/env bash
# Installs everything hactl's build, tests and demo need on a Debian bookworm machine.
# Idempotent: each step checks first and does nothing when its part is already there.
# Run as root (CI and the developers' machines are root); prints what it does.
set -euo pipefail

log() { echo "[install] $*"; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "[install] must run as root (apt-get); re-run with sudo" >&2
    exit 1
  fi
}

apt_retry() {
  # dpkg's lock may be held by another apt run for a moment: retry instead of failing.
  local i
  for i in 1 2 3 4 5 6; do
    if DEBIAN_FRONTEND=noninteractive apt-get "$@"; then return 0; fi
    log "apt-get $1 failed (try $i), retrying in 5 s"
    sleep 5
  done
  return 1
}

# Debian packages and a binary each one provides (checked to decide whether to install).
declare -A PKGS=(
  [protobuf-compiler]=/usr/bin/protoc
  [libprotobuf-dev]=/usr/include/google/protobuf/descriptor.proto
  [pkg-config]=/usr/bin/pkg-config
  [libssl-dev]=/usr/include/openssl/ssl.h
  [postgresql-15]=/usr/lib/postgresql/15/bin/postgres
  [postgresql-client-15]=/usr/lib/postgresql/15/bin/psql
  [etcd-server]=/usr/bin/etcd
  [etcd-client]=/usr/bin/etcdctl
  [zookeeper]=/usr/share/java/zookeeper.jar
  [libslf4j-java]=/usr/share/java/slf4j-simple.jar
  [haproxy]=/usr/sbin/haproxy
  [prometheus]=/usr/bin/prometheus
  [iptables]=/usr/sbin/iptables
  [iproute2]=/usr/sbin/ip
  [procps]=/usr/bin/pgrep
  [curl]=/usr/bin/curl
  [util-linux]=/usr/sbin/runuser
  [pgbackrest]=/usr/bin/pgbackrest
  [vip-manager]=/usr/bin/vip-manager
  [iputils-ping]=/usr/bin/ping
)

missing=()
for p in "${!PKGS[@]}"; do
  [ -e "${PKGS[$p]}" ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  need_root
  log "installing: ${missing[*]}"
  apt_retry update
  apt_retry install -y --no-install-recommends "${missing[@]}" default-jre-headless
fi

# No service started by a package may hold the default ports the demo or tests could collide with.
# (Tests use free ports anyway; this only stops strays started on machines without policy-rc.d.)
for svc in etcd zookeeper haproxy prometheus consul; do
  if [ -x "/etc/init.d/$svc" ] && pgrep -x "$svc" >/dev/null 2>&1; then
    /etc/init.d/"$svc" stop >/dev/null 2>&1 || true
  fi
done

# Consul 1.8.7 from Debian bullseye, without adding bullseye to the system's sources:
# a private apt state directory holds bullseye's lists just for this download.
if ! command -v consul >/dev/null 2>&1; then
  need_root
  D=/var/cache/hactl-consul-apt
  mkdir -p "$D/lists/partial" "$D/cache/archives/partial" "$D/deb"
  URI=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    URI=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$URI" ] && [ -f /etc/apt/sources.list ]; then
    URI=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^http/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  URI=${URI:-http://deb.debian.org/debian}
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $URI bullseye main" > "$D/sources.list"
  O=(-o "Dir::Etc::SourceList=$D/sources.list" -o Dir::Etc::SourceParts=/nonexistent
     -o "Dir::State::Lists=$D/lists" -o "Dir::Cache=$D/cache")
  log "fetching consul from bullseye (private apt state in $D)"
  apt_retry "${O[@]}" update
  (cd "$D/deb" && apt-get "${O[@]}" download consul)
  apt_retry install -y "$D"/deb/consul_*.deb
fi

# The unprivileged OS user PostgreSQL runs as (PostgreSQL refuses root). Debian's postgresql package creates it.
if ! id postgres >/dev/null 2>&1; then
  need_root
  log "creating user postgres"
  useradd --system --create-home --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

# cargo-nextest is not required; plain cargo test is the runner.
command -v cargo >/dev/null 2>&1 || { echo "[install] cargo not found: install Rust (rustup) first" >&2; exit 1; }

# cargo-deb builds the Debian package (scripts/package.sh), from crates.io.
if ! command -v cargo-deb >/dev/null 2>&1; then
  log "installing cargo-deb (cargo install, a few minutes)"
  cargo install --locked cargo-deb --version "^2"
fi

log "ok: protoc $(protoc --version | awk '{print $2}'), etcd $(etcd --version 2>/dev/null | awk '/etcd Version/{print $3}'), consul $(consul version | head -1 | awk '{print $2}'), haproxy $(haproxy -v | head -1 | awk '{print $3}')"
