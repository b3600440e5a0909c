#!/usr/bin/env bash
# README command one: a local 3-node hactl cluster you can watch fail over.
# Installs what is missing, builds, then starts on loopback: a 3-member etcd cluster, three hactl nodes with
# PostgreSQL 15, HAProxy (writes :5000, reads :5001, stats :7000) whose config `hactl template` renders from the
# members (examples/confd), and Prometheus (:9090) scraping every node. A fourth node joins a minute later: it
# appears in HAProxy's stats page within one loop_wait of its member key.
# Ctrl-C stops everything it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
bash scripts/install.sh
cargo build --release -p hactl
HACTL="$ROOT/target/release/hactl"

RUN=/var/lib/hactl-demo
PIDS=()
cleanup() {
  echo
  echo "[demo] stopping everything started by this script"
  # hactl first (SIGTERM: stops PostgreSQL cleanly and releases the lock), then the rest.
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [ -f "$RUN/haproxy.pid" ] && kill "$(cat "$RUN/haproxy.pid")" 2>/dev/null || true
  for i in 1 2 3 4; do
    [ -f "$RUN/node$i/data/postmaster.pid" ] && kill -QUIT "$(head -1 "$RUN/node$i/data/postmaster.pid")" 2>/dev/null || true
  done
}
# Ctrl-C or a TERM ends the script (a trap alone would run the clean-up and carry on with the loop below); the
# clean-up runs once, on the way out.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for port in 2379 2380 2381 2382 2383 2384 5000 5001 5432 5433 5434 5435 7000 7001 8008 8009 8010 8011 9090; do
  if ss -ltn "( sport = :$port )" | grep -q LISTEN; then
    echo "[demo] port $port is already in use: stop what listens there (ss -ltnp) and run again" >&2
    exit 1
  fi
done

rm -rf "$RUN"
mkdir -p "$RUN"/{etcd,prometheus} "$RUN"/node{1,2,3,4} "$RUN"/confd/{conf.d,templates}
chown -R postgres: "$RUN"/node{1,2,3,4}
chmod 755 "$RUN"

C="e1=http://127.0.0.1:2380,e2=http://127.0.0.1:2382,e3=http://127.0.0.1:2384"
for i in 1 2 3; do
  cport=$((2377 + 2 * i)); pport=$((cport + 1))
  etcd --logger=zap --log-level=warn --name "e$i" --data-dir "$RUN/etcd/e$i" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "$C" --initial-cluster-state new --initial-cluster-token hactl-demo \
    --heartbeat-interval 100 --election-timeout 1000 >"$RUN/etcd/e$i.log" 2>&1 &
  PIDS+=($!)
done
until etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:2381,127.0.0.1:2383 endpoint health >/dev/null 2>&1; do sleep 0.2; done
echo "[demo] etcd: 127.0.0.1:2379, :2381, :2383"

for i in 1 2 3; do
  setpriv --reuid=postgres --regid=postgres --init-groups -- "$HACTL" run "$ROOT/examples/config/node$i.yml" >"$RUN/node$i/hactl.log" 2>&1 &
  PIDS+=($!)
done

# HAProxy's config is rendered by `hactl template` from the shipped confd template (unchanged) and follows the
# members: a first render, HAProxy in master-worker mode, then the watcher re-renders and reloads it (SIGUSR2).
cp "$ROOT/examples/confd/templates/haproxy.tmpl" "$RUN/confd/templates/"
resource() {
  cat >"$RUN/confd/conf.d/haproxy.toml" <<TOML
[template]
src = "haproxy.tmpl"
dest = "$RUN/haproxy.cfg"
keys = ["/members/", "/leader"]
check_cmd = "haproxy -c -q -f {{.src}}"
$1
TOML
}
resource ""
until "$HACTL" -c "$ROOT/examples/config/node1.yml" template --confdir "$RUN/confd" --onetime 2>>"$RUN/template.log"; do
  sleep 0.5
done
haproxy -W -D -p "$RUN/haproxy.pid" -f "$RUN/haproxy.cfg"
resource "reload_cmd = \"kill -USR2 \$(cat $RUN/haproxy.pid)\""
"$HACTL" -c "$ROOT/examples/config/node1.yml" template --confdir "$RUN/confd" >>"$RUN/template.log" 2>&1 &
PIDS+=($!)
prometheus --config.file="$ROOT/examples/prometheus/prometheus.yml" --storage.tsdb.path="$RUN/prometheus" \
  --web.listen-address=127.0.0.1:9090 >"$RUN/prometheus.log" 2>&1 &
PIDS+=($!)

echo "[demo] waiting for a primary..."
for _ in $(seq 1 120); do
  curl -sf http://127.0.0.1:8008/primary >/dev/null 2>&1 || curl -sf http://127.0.0.1:8009/primary >/dev/null 2>&1 \
    || curl -sf http://127.0.0.1:8010/primary >/dev/null 2>&1 && break
  sleep 0.5
done
sleep 3
cat <<INFO

[demo] running:
  hactl REST API   http://127.0.0.1:8008  :8009  :8010   (logs: $RUN/nodeN/hactl.log)
  PostgreSQL       127.0.0.1:5432  :5433  :5434   (user postgres, password super-pass)
  HAProxy          writes 127.0.0.1:5000, reads 127.0.0.1:5001, stats http://127.0.0.1:7000
                   config rendered by hactl template: $RUN/haproxy.cfg (log: $RUN/template.log)
  Prometheus       http://127.0.0.1:9090        alerts: http://127.0.0.1:9090/alerts
                   Grafana dashboard: examples/grafana/hactl-dashboard.json

  Try, in another terminal:
    $HACTL -c $ROOT/examples/config/node1.yml list
    $HACTL -c $ROOT/examples/config/node1.yml switchover --candidate node2 --force
    kill -9 \$(head -1 $RUN/node1/data/postmaster.pid)     # PostgreSQL crash: restarted in place
    pkill -STOP -f 'hactl run .*node1.yml'                 # frozen daemon: fenced, a replica takes over
  Ctrl-C here stops everything.

INFO
"$HACTL" -c "$ROOT/examples/config/node1.yml" list || true
rounds=0
while true; do
  # In the background and waited for, so a signal is acted on at once rather than after the sleep.
  sleep 10 &
  wait $!
  rounds=$((rounds + 1))
  if [ $rounds = 6 ]; then
    echo "[demo] a fourth node joins (examples/config/node4.yml): it clones itself, and hactl template adds it to"
    echo "       HAProxy within one loop_wait (server node4 in $RUN/haproxy.cfg and on http://127.0.0.1:7000)"
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$HACTL" run "$ROOT/examples/config/node4.yml" >"$RUN/node4/hactl.log" 2>&1 &
    PIDS+=($!)
  fi
  "$HACTL" -c "$ROOT/examples/config/node1.yml" list 2>/dev/null | tail -n +1 || true
  if [ $rounds -ge 7 ]; then
    echo "[demo] HAProxy's servers: $(grep -c '^    server ' "$RUN/haproxy.cfg") lines ($(grep -o 'server node[0-9]' "$RUN/haproxy.cfg" | sort -u | cut -d' ' -f2 | tr '\n' ' '))"
  fi
done
