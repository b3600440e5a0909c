//! Looking at the local server without ever hanging: the data directory and postmaster.pid say whether a
//! postmaster should be there, /proc says whether it is, and one query (bounded by the query timeout) says what
//! it does.
//!
//! | postmaster.pid | process        | query            | state          |
//! |----------------|----------------|------------------|----------------|
//! | no PG_VERSION  |                |                  | Uninitialized  |
//! | absent         |                |                  | Stopped, or Crashed if the control file says it was not shut down (and no backup_label says it is a fresh copy) |
//! | present        | gone / zombie  |                  | Crashed        |
//! | present        | alive          | answered         | Running        |
//! | present        | alive          | timed out        | Unresponsive   |
//! | present        | alive          | refused / error  | Starting ("starting up", no socket yet, auth) |

use std::time::Instant;

use ha_core::pg::{PgObservation, PgRunState, ReplicationRow, WalPosition};
use tracing::{debug, warn};

use crate::connect::ConnError;
use crate::controldata::{highest_history_timeline, parse_lsn, read_history, wal_end_upper_bound};
use crate::ctl::PgCtl;
use crate::os;

/// The one query observe runs on a live server.
/// [`PgCtl::wal_position`]: the positions of [`OBSERVE_SQL`] alone.
const POSITION_SQL: &str = "SELECT pg_is_in_recovery(),
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
  pg_last_wal_receive_lsn()::text,
  pg_last_wal_replay_lsn()::text";

const OBSERVE_SQL: &str = "SELECT pg_is_in_recovery(),
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
  pg_last_wal_receive_lsn()::text,
  pg_last_wal_replay_lsn()::text,
  CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,
  CASE WHEN pg_is_in_recovery() THEN 0
       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  (SELECT timeline_id FROM pg_control_checkpoint()),
  (SELECT min_recovery_end_timeline FROM pg_control_recovery()),
  COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), 0),
  COALESCE((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false),
  (SELECT system_identifier::text FROM pg_control_system()),
  current_setting('server_version_num')::int,
  ARRAY(SELECT name::text FROM pg_settings WHERE pending_restart ORDER BY name),
  ARRAY(SELECT application_name::text FROM pg_stat_replication ORDER BY application_name),
  ARRAY(SELECT name || '=' || setting FROM pg_settings WHERE name IN (
    'max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions',
    'max_locks_per_transaction') AND pg_is_in_recovery()),
  (extract(epoch FROM pg_postmaster_start_time()) * 1000)::bigint,
  (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000)::bigint,
  current_setting('synchronous_standby_names'),
  ARRAY(SELECT s.name || chr(31) || current_setting(s.name) || chr(31) ||
        COALESCE((SELECT f.setting FROM pg_file_settings f WHERE f.name = s.name
                  ORDER BY f.seqno DESC LIMIT 1), '')
        FROM pg_settings s WHERE s.pending_restart ORDER BY s.name)";

/// The walsenders of a primary, with what each standby acknowledged.
const REPLICATION_SQL: &str =
    "SELECT application_name::text, usename::text, client_addr::text, state::text,
  sync_state::text, sync_priority, pg_wal_lsn_diff(write_lsn, '0/0')::bigint,
  pg_wal_lsn_diff(flush_lsn, '0/0')::bigint, pg_wal_lsn_diff(replay_lsn, '0/0')::bigint
  FROM pg_stat_replication ORDER BY application_name";

/// Running values of the recovery-sensitive parameters on a standby ("name=setting"), see
/// [`PgCtl::recovery_sensitive_pending`].
pub(crate) const RECOVERY_SENSITIVE_SQL: &str =
    "SELECT name || '=' || setting FROM pg_settings WHERE name IN (
    'max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions',
    'max_locks_per_transaction') AND pg_is_in_recovery()";

struct Live {
    slots: Vec<ha_core::pg::LocalSlot>,
    sync_names: String,
    replication: Vec<ReplicationRow>,
    started_ms: Option<i64>,
    replayed_ms: Option<i64>,
    in_recovery: bool,
    current: Option<String>,
    receive: Option<String>,
    replay: Option<String>,
    paused: bool,
    primary_tli: i32,
    checkpoint_tli: i32,
    min_recovery_tli: i32,
    received_tli: i32,
    streaming: bool,
    system_id: String,
    version: i32,
    pending: Vec<String>,
    /// `name␟value in force␟value in the files` per pending parameter.
    pending_values: Vec<String>,
    replicas: Vec<String>,
    recovery_sensitive: Vec<String>,
}

impl PgCtl {
    /// Looks at the server. Never fails and never takes longer than about the query timeout plus one
    /// pg_controldata run (only for a stopped server).
    pub async fn observe(&self) -> PgObservation {
        let started = Instant::now();
        let obs = self.observe_inner().await;
        debug!(
            node = %self.s.name,
            state = ?obs.run_state,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "observed"
        );
        obs
    }

    /// Where the WAL stands now (one query on a fresh connection): what `GET /patroni` reports, so the others
    /// count quorum votes from the position this node has, not the one its last loop saw.
    pub async fn wal_position(&self) -> Option<WalPosition> {
        let dd = self.data_dir();
        os::read_pid_file(dd).filter(|p| os::is_our_postmaster(p.pid, dd))?;
        let row = self
            .with_client(self.local_config(&self.s.database), |c| async move {
                c.query_one(POSITION_SQL, &[]).await
            })
            .await
            .ok()?;
        let lsn = |i: usize| {
            row.get::<_, Option<String>>(i)
                .as_deref()
                .and_then(parse_lsn)
        };
        Some(WalPosition {
            in_recovery: row.get(0),
            current: lsn(1),
            receive: lsn(2),
            replay: lsn(3),
        })
    }

    /// Resolves when the postmaster running now exits, at once if none runs. The driver waits on it beside its
    /// loop timer while it saw the server alive, so a crashed or killed server is restarted (or a dead primary
    /// given up) at once, not after loop_wait.
    pub async fn postmaster_exited(&self) {
        if let Some(p) = os::read_pid_file(self.data_dir())
            .filter(|p| os::is_our_postmaster(p.pid, self.data_dir()))
        {
            os::process_exit(p.pid).await
        }
    }

    async fn observe_inner(&self) -> PgObservation {
        let dd = self.data_dir();
        let mut obs = PgObservation {
            server_version: Some(self.version_num),
            ..Default::default()
        };
        if !self.initialized() {
            obs.run_state = Some(PgRunState::Uninitialized);
            return obs;
        }
        obs.history = read_history(dd);
        let standby_signal = dd.join("standby.signal").exists();
        let upstream = self.node_state().upstream.map(|u| u.name);
        let pid_file = os::read_pid_file(dd);
        let alive = pid_file
            .as_ref()
            .filter(|p| os::is_our_postmaster(p.pid, dd));
        let Some(pid) = alive else {
            // Not running: what the control file says.
            let clean = match self.controldata_within(self.s.timeouts.query).await {
                Ok(cd) => {
                    obs.system_id = Some(cd.system_id.clone());
                    obs.timeline = cd.timeline();
                    obs.lsn = cd.lsn();
                    let clean = cd.clean_shutdown() || dd.join("backup_label").exists();
                    if !clean {
                        // Crashed: WAL went on after the last checkpoint; see wal_end_upper_bound.
                        obs.timeline = obs.timeline.max(highest_history_timeline(dd));
                        if let Some(end) =
                            wal_end_upper_bound(dd, obs.timeline, cd.wal_segment_bytes)
                        {
                            obs.lsn = obs.lsn.max(end);
                        }
                    }
                    clean
                }
                Err(e) => {
                    warn!(error = %e, "pg_controldata failed");
                    true
                }
            };
            obs.in_recovery = standby_signal;
            if standby_signal {
                obs.upstream = upstream;
            }
            obs.run_state = Some(if pid_file.is_some() || !clean {
                PgRunState::Crashed
            } else {
                PgRunState::Stopped
            });
            return obs;
        };
        // Even a postmaster whose pid file says "starting" is asked: one that answers "starting up" is Starting,
        // one stopped by a signal during startup does not answer and is Unresponsive.
        let managed = self.node_state().member_slots;
        let r = self
            .with_client(self.local_config(&self.s.database), |c| async move {
                let row = c.query_one(OBSERVE_SQL, &[]).await?;
                let slots = crate::slots::parse_slots(
                    &c.query(crate::slots::SLOTS_SQL, &[]).await?,
                    &managed,
                );
                Ok(Live {
                    slots,
                    in_recovery: row.get(0),
                    current: row.get(1),
                    receive: row.get(2),
                    replay: row.get(3),
                    paused: row.get(4),
                    primary_tli: row.get(5),
                    checkpoint_tli: row.get(6),
                    min_recovery_tli: row.get(7),
                    received_tli: row.get(8),
                    streaming: row.get(9),
                    system_id: row.get(10),
                    version: row.get(11),
                    pending: row.get(12),
                    replicas: row.get(13),
                    recovery_sensitive: row.get(14),
                    started_ms: row.get(15),
                    replayed_ms: row.get(16),
                    sync_names: row.get(17),
                    pending_values: row.get(18),
                    replication: if row.get::<_, bool>(0) {
                        Vec::new()
                    } else {
                        c.query(REPLICATION_SQL, &[])
                            .await?
                            .iter()
                            .map(|r| ReplicationRow {
                                application_name: r.get::<_, Option<String>>(0).unwrap_or_default(),
                                usename: r.get(1),
                                client_addr: r.get(2),
                                state: r.get::<_, Option<String>>(3).unwrap_or_default(),
                                sync_state: r.get::<_, Option<String>>(4).unwrap_or_default(),
                                sync_priority: r.get::<_, Option<i32>>(5).unwrap_or(0),
                                write_lsn: r.get::<_, Option<i64>>(6).map(|v| v.max(0) as u64),
                                flush_lsn: r.get::<_, Option<i64>>(7).map(|v| v.max(0) as u64),
                                replay_lsn: r.get::<_, Option<i64>>(8).map(|v| v.max(0) as u64),
                            })
                            .collect()
                    },
                })
            })
            .await;
        match r {
            Ok(l) => {
                obs.run_state = Some(PgRunState::Running);
                obs.in_recovery = l.in_recovery;
                obs.system_id = Some(l.system_id);
                obs.server_version = Some(l.version as u32);
                obs.pending_restart = l.pending;
                for name in self.recovery_sensitive_pending(&l.recovery_sensitive) {
                    if !obs.pending_restart.contains(&name) {
                        obs.pending_restart.push(name);
                    }
                }
                obs.pending_restart.sort();
                obs.pending_restart_values = l
                    .pending_values
                    .iter()
                    .filter_map(|t| {
                        let mut parts = t.split('\u{1f}');
                        let (name, old, new) = (parts.next()?, parts.next()?, parts.next()?);
                        Some((name.to_string(), (old.to_string(), new.to_string())))
                    })
                    .collect();
                obs.replicas = l.replicas;
                obs.postmaster_start_unix_ms = l.started_ms;
                obs.synchronous_standby_names = Some(l.sync_names);
                obs.replication = l.replication;
                obs.slots = Some(l.slots);
                obs.replayed_unix_ms = l.replayed_ms.filter(|_| l.in_recovery);
                obs.replay_paused = l.paused;
                obs.streaming = l.streaming;
                if l.in_recovery {
                    obs.receive_lsn = l.receive.as_deref().and_then(parse_lsn);
                    obs.replay_lsn = l.replay.as_deref().and_then(parse_lsn);
                    obs.lsn = obs
                        .receive_lsn
                        .unwrap_or(0)
                        .max(obs.replay_lsn.unwrap_or(0));
                    let streamed = self.streamed.seen(l.started_ms, l.received_tli);
                    obs.timeline = [streamed, l.checkpoint_tli, l.min_recovery_tli]
                        .into_iter()
                        .max()
                        .unwrap_or(0)
                        .max(0) as u64;
                    obs.upstream = upstream;
                } else {
                    obs.lsn = l.current.as_deref().and_then(parse_lsn).unwrap_or(0);
                    obs.timeline = l.primary_tli.max(0) as u64;
                }
            }
            Err(ConnError::Timeout) => {
                warn!(
                    pid = pid.pid,
                    timeout_ms = self.s.timeouts.query.as_millis() as u64,
                    stopped_by_signal = os::is_stopped(pid.pid),
                    "PostgreSQL is alive but did not answer"
                );
                obs.run_state = Some(PgRunState::Unresponsive);
                obs.in_recovery = standby_signal;
            }
            Err(ConnError::NotAccepting(m)) => {
                debug!(message = %m, "PostgreSQL does not accept connections yet");
                obs.run_state = Some(PgRunState::Starting);
                obs.in_recovery = standby_signal;
            }
            Err(ConnError::Other(m)) => {
                // Alive, answering, but not to us (authentication, a broken setting): not a hang, so not a reason
                // to fence. Reported as not ready; the log says why.
                warn!(message = %m, "PostgreSQL is alive but the observer's query failed");
                obs.run_state = Some(PgRunState::Starting);
                obs.in_recovery = standby_signal;
            }
        }
        obs
    }
}

/// The timeline a standby's WAL receiver last streamed on, remembered for as long as the same postmaster runs.
///
/// Why: a standby whose upstream is gone has no WAL receiver, so `pg_stat_wal_receiver` says nothing, and the
/// control file's checkpoint and minimum-recovery timelines lag behind a standby that followed its upstream onto a
/// new timeline until its first restartpoint there. Read alone they put the standby on its old timeline at a
/// position past that timeline's end: it looked diverged and was stopped to rejoin, needlessly (seen in the e2e
/// partition scenario: the synchronous standby restarted six seconds before it was needed for a failover). A
/// receiver streams a timeline only once the startup process accepted it (a standby past the fork point refuses the
/// switch), so the timeline it streamed is the one replay is on.
#[derive(Debug, Default)]
pub(crate) struct StreamedTimeline(std::sync::Mutex<Option<(Option<i64>, i32)>>);

impl StreamedTimeline {
    /// The receiver's timeline now (`received_tli` > 0), or the one it streamed before under the postmaster that
    /// started at `started_ms`; 0 when there is none.
    pub(crate) fn seen(&self, started_ms: Option<i64>, received_tli: i32) -> i32 {
        let mut memo = ha_core::sync::lock(&self.0);
        if received_tli > 0 {
            *memo = Some((started_ms, received_tli));
            return received_tli;
        }
        match *memo {
            Some((started, tli)) if started == started_ms => tli,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod streamed_timeline_tests {
    use super::StreamedTimeline;

    #[test]
    fn a_standby_whose_upstream_died_keeps_the_timeline_its_receiver_streamed() {
        let t = StreamedTimeline::default();
        assert_eq!(t.seen(Some(1_000), 0), 0, "never streamed");
        assert_eq!(t.seen(Some(1_000), 2), 2, "streaming on timeline 2");
        assert_eq!(
            t.seen(Some(1_000), 0),
            2,
            "the receiver is gone, the postmaster is the same"
        );
        assert_eq!(
            t.seen(Some(2_000), 0),
            0,
            "a restarted postmaster replays from its control file again"
        );
        assert_eq!(t.seen(Some(2_000), 3), 3);
    }
}
