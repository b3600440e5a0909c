//! [`PgControl`] for a simulated server: each call changes the server's state at once, with the refusals a real one
//! gives (a hung server times out, a running one is not cloned over or rewound, a source of another cluster is refused
//! for a rewind).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{SimPg, SimPgState, SimRun, RESTART_PARAMETERS};
use crate::pg::{
    ParamChange, PgControl, PgError, PgObservation, PgRunState, StopMode, TimelineSwitch, Upstream,
};

#[async_trait]
impl PgControl for SimPg {
    async fn observe(&self) -> PgObservation {
        let replication = {
            let g = self.net.lock();
            match g.servers.get(&self.name) {
                Some(s) if s.run == SimRun::Running && !s.standby => g.replication_rows(&self.name),
                _ => Vec::new(),
            }
        };
        self.with(|s| {
            let run_state = if !s.initialized {
                PgRunState::Uninitialized
            } else {
                match s.run {
                    SimRun::Stopped => PgRunState::Stopped,
                    SimRun::Crashed => PgRunState::Crashed,
                    SimRun::Running => PgRunState::Running,
                    SimRun::Hung => PgRunState::Unresponsive,
                }
            };
            let pending: Vec<String> = RESTART_PARAMETERS
                .iter()
                .filter(|p| s.configured.get(**p) != s.running_with.get(**p))
                .map(|p| p.to_string())
                .collect();
            PgObservation {
                run_state: Some(run_state),
                in_recovery: s.standby,
                timeline: s.timeline,
                lsn: s.lsn,
                receive_lsn: if s.standby { Some(s.lsn) } else { None },
                replay_lsn: if s.standby { Some(s.lsn) } else { None },
                system_id: if s.initialized {
                    Some(s.system_id.clone())
                } else {
                    None
                },
                upstream: s.upstream.clone(),
                streaming: s.streaming,
                pending_restart: if s.run == SimRun::Running {
                    pending
                } else {
                    Vec::new()
                },
                history: s.history.clone(),
                server_version: Some(150018),
                replication,
                synchronous_standby_names: (s.run == SimRun::Running).then(|| {
                    s.running_with
                        .get("synchronous_standby_names")
                        .cloned()
                        .unwrap_or_default()
                }),
                ..Default::default()
            }
        })
    }

    async fn bootstrap(&self) -> Result<String, PgError> {
        let mut g = self.net.lock();
        g.next_sysid += 1;
        let sysid = g.next_sysid.to_string();
        let s = g
            .servers
            .entry(self.name.clone())
            .or_insert_with(SimPgState::empty);
        if s.initialized {
            return Err(PgError::Refused {
                operation: "bootstrap".into(),
                reason: "data directory is not empty".into(),
            });
        }
        *s = SimPgState {
            initialized: true,
            system_id: sysid.clone(),
            run: SimRun::Running,
            timeline: 1,
            lsn: 0x0100_0000,
            ..SimPgState::empty()
        };
        Ok(sysid)
    }

    async fn clone_from(&self, source: &Upstream) -> Result<(), PgError> {
        self.copy_from(source, "clone")
    }

    async fn start_primary(&self) -> Result<(), PgError> {
        self.with(|s| {
            if !s.initialized {
                return Err(PgError::failed("start", "no data directory"));
            }
            if s.alive() {
                return Err(PgError::failed("start", "already running"));
            }
            if s.standby {
                // Starting a standby's data directory without standby.signal ends recovery: a new timeline.
                s.history.push(TimelineSwitch {
                    timeline: s.timeline,
                    lsn: s.lsn,
                });
                s.timeline += 1;
                s.standby = false;
                s.promotions += 1;
            }
            s.upstream = None;
            s.run = SimRun::Running;
            s.running_with = s.configured.clone();
            Ok(())
        })
    }

    async fn start_replica(&self, upstream: Option<&Upstream>) -> Result<(), PgError> {
        self.with(|s| {
            if !s.initialized {
                return Err(PgError::failed("start", "no data directory"));
            }
            if s.alive() {
                return Err(PgError::failed("start", "already running"));
            }
            s.standby = true;
            s.upstream = upstream.map(|u| u.name.clone());
            s.run = SimRun::Running;
            s.running_with = s.configured.clone();
            Ok(())
        })
    }

    async fn stop(&self, mode: StopMode) -> Result<(), PgError> {
        self.check_answers("stop")?;
        if self.with(|s| s.alive() && s.stop_hangs) {
            return std::future::pending().await;
        }
        let mut g = self.net.lock();
        let me = match g.servers.get(&self.name) {
            Some(s) => s.clone(),
            None => return Ok(()),
        };
        if me.run != SimRun::Running {
            return Ok(());
        }
        // A clean shutdown of a primary sends all WAL to the replicas streaming from it.
        if mode != StopMode::Immediate && !me.standby {
            for (n, r) in g.servers.iter_mut() {
                if *n != self.name
                    && r.run == SimRun::Running
                    && r.standby
                    && r.upstream.as_deref() == Some(self.name.as_str())
                    && r.timeline == me.timeline
                    && r.system_id == me.system_id
                {
                    r.lsn = r.lsn.max(me.lsn);
                }
            }
        }
        if let Some(s) = g.servers.get_mut(&self.name) {
            s.run = if mode == StopMode::Immediate {
                SimRun::Crashed
            } else {
                SimRun::Stopped
            };
            s.streaming = false;
        }
        Ok(())
    }

    async fn restart(&self) -> Result<(), PgError> {
        self.check_answers("restart")?;
        self.with(|s| {
            // A stopped server is started in the role its data directory is configured for (pg_ctl restart).
            if !s.initialized {
                return Err(PgError::failed("restart", "no data directory"));
            }
            if s.run == SimRun::Hung {
                return Err(PgError::failed("restart", "the server does not answer"));
            }
            s.run = SimRun::Running;
            s.running_with = s.configured.clone();
            Ok(())
        })
    }

    async fn reload(&self) -> Result<(), PgError> {
        self.check_answers("reload")
    }

    async fn promote(&self) -> Result<(), PgError> {
        self.check_answers("promote")?;
        self.with(|s| {
            if s.run != SimRun::Running || !s.standby {
                return Err(PgError::failed("promote", "not a running standby"));
            }
            s.history.push(TimelineSwitch {
                timeline: s.timeline,
                lsn: s.lsn,
            });
            s.timeline += 1;
            s.standby = false;
            s.upstream = None;
            s.streaming = false;
            s.promotions += 1;
            Ok(())
        })
    }

    async fn follow(&self, upstream: &Upstream) -> Result<(), PgError> {
        self.check_answers("follow")?;
        self.with(|s| {
            if s.run != SimRun::Running || !s.standby {
                return Err(PgError::failed("follow", "not a running standby"));
            }
            s.upstream = Some(upstream.name.clone());
            Ok(())
        })
    }

    async fn rewind(&self, source: &Upstream) -> Result<(), PgError> {
        let mut g = self.net.lock();
        let src = match g.servers.get(&source.name) {
            Some(s) if s.run == SimRun::Running => s.clone(),
            _ => {
                return Err(PgError::failed(
                    "rewind",
                    format!("{} is not running", source.name),
                ))
            }
        };
        let s = g
            .servers
            .entry(self.name.clone())
            .or_insert_with(SimPgState::empty);
        if s.alive() {
            return Err(PgError::Refused {
                operation: "rewind".into(),
                reason: "PostgreSQL is running".into(),
            });
        }
        if s.system_id != src.system_id {
            return Err(PgError::Refused {
                operation: "rewind".into(),
                reason: "source belongs to another cluster".into(),
            });
        }
        // Back to the last common point, then on the source's timeline.
        let fork = src.end_of(s.timeline).unwrap_or(src.lsn).min(s.lsn);
        s.lsn = fork;
        s.timeline = src.timeline;
        s.history = src.history.clone();
        s.standby = true;
        s.run = SimRun::Stopped;
        s.upstream = Some(source.name.clone());
        s.rewinds += 1;
        Ok(())
    }

    async fn reinitialize(&self, source: &Upstream) -> Result<(), PgError> {
        self.copy_from(source, "reinitialize")
    }

    async fn apply_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
        // The simulated server has no recovery settings to change: it streams from its upstream or does not.
        _recovery_conf: &BTreeMap<String, String>,
    ) -> Result<ParamChange, PgError> {
        self.check_answers("reload")?;
        self.with(|s| {
            // The leader-managed synchronous_standby_names overrides the parameters and survives their change
            // and any restart, as pg-control keeps it in its state file.
            const SSN: &str = "synchronous_standby_names";
            let managed = s.configured.get(SSN).cloned();
            s.configured = parameters.clone();
            if let Some(v) = managed {
                s.configured.insert(SSN.into(), v);
            }
            let pending = RESTART_PARAMETERS
                .iter()
                .filter(|p| s.configured.get(**p) != s.running_with.get(**p))
                .map(|p| p.to_string())
                .collect();
            Ok(ParamChange {
                pending_restart: pending,
            })
        })
    }

    async fn set_synchronous_standby_names(&self, value: Option<&str>) -> Result<(), PgError> {
        self.check_answers("set_synchronous_standby_names")?;
        self.with(|s| {
            const SSN: &str = "synchronous_standby_names";
            match value {
                Some(v) => {
                    s.configured.insert(SSN.into(), v.into());
                    s.running_with.insert(SSN.into(), v.into());
                }
                None => {
                    s.configured.remove(SSN);
                    s.running_with.remove(SSN);
                }
            }
            Ok(())
        })
    }

    // The simulated server has no replication slots (its observation reports none, so the decision plans none).
    async fn apply_slots(&self, _plan: &crate::pg::SlotPlan) -> Result<(), PgError> {
        Ok(())
    }
    async fn copy_logical_slots(
        &self,
        _source: &Upstream,
        _names: &[String],
    ) -> Result<(), PgError> {
        Err(PgError::failed(
            "copy_logical_slots",
            "the simulated server has no slots",
        ))
    }

    async fn fence(&self) -> Result<(), PgError> {
        self.with(|s| {
            if s.alive() {
                s.run = SimRun::Crashed;
                s.streaming = false;
                s.fences += 1;
            }
            Ok(())
        })
    }
}
