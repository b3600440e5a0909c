//! Replication slots across switchovers: a foreign (Barman-style) physical slot and a permanent logical slot, whose
//! consumer must see every acknowledged row after any number of switchovers (at least once: a row may come twice,
//! none may be missing).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::Cluster;

/// Slot names on node `i` (`None`: the node does not answer).
pub async fn slots_on(c: &Cluster, i: usize) -> Option<BTreeSet<String>> {
    let cl = c.connect(c.nodes[i].pg_port).await.ok()?;
    let rows = cl
        .query("SELECT slot_name::text FROM pg_replication_slots", &[])
        .await
        .ok()?;
    Some(rows.iter().map(|r| r.get(0)).collect())
}

/// Waits until every node has the slots `names`; panics with the nodes' logs after `within`.
pub async fn wait_slots_everywhere(c: &Cluster, names: &[&str], within: Duration) {
    let start = Instant::now();
    loop {
        let mut missing = Vec::new();
        for i in 0..c.nodes.len() {
            let have = slots_on(c, i).await.unwrap_or_default();
            for n in names {
                if !have.contains(*n) {
                    missing.push(format!("{}:{n}", c.nodes[i].name));
                }
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < within,
            "slots missing after {within:?}: {missing:?}\n{}",
            c.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Makes a physical slot hactl did not create and the configuration does not name, on node `i`.
pub async fn create_foreign_slot(c: &Cluster, i: usize, name: &str) {
    let cl = c.connect(c.nodes[i].pg_port).await.expect("connect");
    cl.execute(
        "SELECT pg_create_physical_replication_slot($1, true)",
        &[&name],
    )
    .await
    .expect("create the foreign slot");
}

/// Consumes the logical slot `slot` on node `i`: the ids of the `e2e_writes` rows it decoded.
pub async fn consume(c: &Cluster, i: usize, slot: &str) -> Vec<i64> {
    let cl = c.connect(c.nodes[i].pg_port).await.expect("connect");
    let rows = cl
        .query(
            "SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL) \
             WHERE data LIKE 'table public.e2e_writes: INSERT:%'",
            &[&slot],
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "consuming {slot} on {}: {e} {:?}\n{}",
                c.nodes[i].name,
                e.as_db_error().map(|d| d.message()),
                c.dump_logs()
            )
        });
    rows.iter()
        .filter_map(|r| {
            let d: String = r.get(0);
            // `table public.e2e_writes: INSERT: id[bigint]:42 at[timestamp with time zone]:'...'`
            d.split("id[bigint]:")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// `restart_lsn` of slot `slot` on node `i`.
async fn restart_lsn(c: &Cluster, i: usize, slot: &str) -> Option<i64> {
    let cl = c.connect(c.nodes[i].pg_port).await.ok()?;
    cl.query_opt(
        "SELECT pg_wal_lsn_diff(restart_lsn, '0/0')::bigint FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .ok()??
    .get(0)
}

/// Moves the logical slot's `restart_lsn` on the primary past the replicas' first WAL (a checkpoint logs the
/// running transactions decoding restarts from; consuming again confirms past it), then waits until every
/// replica's copy has caught up with it: a copy made before that would need WAL the replica never had. In
/// production a consumer moves the slot all the time; a test that switches over seconds after the slot was made
/// has to do it on purpose.
pub async fn settle_logical(c: &Cluster, primary: usize, slot: &str, decoded: &mut BTreeSet<i64>) {
    decoded.extend(consume(c, primary, slot).await);
    let cl = c.connect(c.nodes[primary].pg_port).await.expect("connect");
    cl.batch_execute("CHECKPOINT").await.expect("checkpoint");
    tokio::time::sleep(Duration::from_millis(300)).await;
    decoded.extend(consume(c, primary, slot).await);
    let want = restart_lsn(c, primary, slot)
        .await
        .expect("the slot on the primary");
    let start = Instant::now();
    loop {
        let mut behind = Vec::new();
        for i in (0..c.nodes.len()).filter(|i| *i != primary) {
            if restart_lsn(c, i, slot).await.map_or(true, |l| l < want) {
                behind.push(c.nodes[i].name.clone());
            }
        }
        if behind.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the copies of {slot} on {behind:?} did not catch up with the primary's\n{}",
            c.dump_logs()
        );
        // A copy's restart_lsn moves only when it is advanced past a new running-transactions record: keep the
        // consumer going (as one does in production), so the copies get new positions to move to.
        if start.elapsed().as_millis() % 2_000 < 250 {
            decoded.extend(consume(c, primary, slot).await);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The acknowledged ids between the first and the last decoded one that the consumer never saw.
pub fn gaps(acked: &[i64], decoded: &BTreeSet<i64>) -> Vec<i64> {
    let (Some(lo), Some(hi)) = (decoded.first(), decoded.last()) else {
        return Vec::new();
    };
    acked
        .iter()
        .filter(|id| *id >= lo && *id <= hi && !decoded.contains(id))
        .copied()
        .collect()
}
