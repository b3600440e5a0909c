//! The `DcsClient` and `Dcs` traits over the v2 requests of the parent module: loads, compare-and-set writes, the
//! leader lock as a key with a TTL, the member key, and the leader watch.

use super::*;

#[async_trait]
impl DcsClient for EtcdV2Dcs {
    async fn load(&self) -> Result<Cluster, DcsError> {
        let query = [
            ("recursive", "true".to_string()),
            ("quorum", "true".to_string()),
        ];
        let r = self
            .call(Method::GET, "", &query, &[], self.deadline())
            .await
            .map_err(|e| context("load", e))?;
        if r.error_code() == Some(code::KEY_NOT_FOUND) {
            return Ok(Cluster::default());
        }
        if !r.ok() {
            return Err(r.rejected("load"));
        }
        let mut entries = Vec::new();
        if let Some(node) = r.body.get("node") {
            leaves(node, &self.base, &mut entries);
        }
        Ok(Cluster::from_entries(entries))
    }

    async fn delete_member(&self, name: &str) -> Result<(), DcsError> {
        self.delete("delete_member", &format!("{}{name}", keys::MEMBERS), &[])
            .await
    }

    async fn write_shared(
        &self,
        key: SharedKey,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        let cond: Vec<(&str, String)> = version
            .map(|v| vec![("prevIndex", v.to_string())])
            .unwrap_or_default();
        let r = self.put(key.op(), key.path(), &value, &cond).await?;
        match r.error_code() {
            _ if r.ok() => Ok(()),
            Some(code::COMPARE_FAILED | code::KEY_NOT_FOUND) => {
                Err(DcsError::Conflict(format!("{}: {}", key.op(), r.message())))
            }
            _ => Err(r.rejected(key.op())),
        }
    }

    async fn delete_cluster(&self) -> Result<(), DcsError> {
        self.delete("delete_cluster", "", &[("recursive", "true".to_string())])
            .await
    }
}

#[async_trait]
impl Dcs for EtcdV2Dcs {
    async fn set_ttl(&self, ttl: Duration) -> Result<(), DcsError> {
        // Whole seconds, rounded up: etcd v2 takes nothing finer.
        let s = ttl.as_millis().div_ceil(1000).max(1) as u64;
        self.ttl_s.store(s, Ordering::Relaxed);
        Ok(())
    }

    fn set_retry_timeout(&self, timeout: Duration) {
        self.timeout_ms
            .store(timeout.as_millis() as u64, Ordering::Relaxed);
    }

    async fn initialize_race(&self, value: &str) -> Result<bool, DcsError> {
        self.create("initialize_race", keys::INITIALIZE, value, false)
            .await
    }

    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        self.set("set_initialize", keys::INITIALIZE, sysid, false)
            .await
    }

    async fn cancel_initialization(&self) -> Result<(), DcsError> {
        self.delete("cancel_initialization", keys::INITIALIZE, &[])
            .await
    }

    async fn acquire_leader(&self, name: &str) -> Result<bool, DcsError> {
        self.create("acquire_leader", keys::LEADER, name, true)
            .await
    }

    async fn renew_leader(&self, name: &str) -> Result<bool, DcsError> {
        // prevValue: only while the key still holds our name (an expired or taken lock is not re-created).
        let cond = [("prevValue", name.to_string()), ("ttl", self.ttl())];
        let r = self.put("renew_leader", keys::LEADER, name, &cond).await?;
        match r.error_code() {
            _ if r.ok() => Ok(true),
            Some(code::COMPARE_FAILED | code::KEY_NOT_FOUND) => Ok(false),
            _ => Err(r.rejected("renew_leader")),
        }
    }

    async fn release_leader(&self, name: &str) -> Result<(), DcsError> {
        self.delete(
            "release_leader",
            keys::LEADER,
            &[("prevValue", name.to_string())],
        )
        .await
    }

    async fn touch_member(&self, name: &str, data: &MemberData) -> Result<(), DcsError> {
        self.set(
            "touch_member",
            &format!("{}{name}", keys::MEMBERS),
            &to_json(data),
            true,
        )
        .await
    }

    async fn write_status(&self, status: &Status) -> Result<(), DcsError> {
        self.set("write_status", keys::STATUS, &to_json(status), false)
            .await
    }

    async fn write_failsafe(&self, members: &BTreeMap<String, String>) -> Result<(), DcsError> {
        self.set("write_failsafe", keys::FAILSAFE, &to_json(members), false)
            .await
    }

    async fn watch_leader(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        let end = Instant::now() + timeout;
        // The key as it is now: a change since the snapshot the caller read is reported at once.
        let now = self
            .call(
                Method::GET,
                keys::LEADER,
                &[("quorum", "true".to_string())],
                &[],
                self.deadline(),
            )
            .await
            .map_err(|e| context("watch_leader", e))?;
        let current = match now.error_code() {
            _ if now.ok() => now
                .body
                .pointer("/node/modifiedIndex")
                .and_then(Value::as_u64),
            Some(code::KEY_NOT_FOUND) => None,
            _ => return Err(now.rejected("watch_leader")),
        };
        if current != known_version {
            return Ok(WatchOutcome::LeaderChanged);
        }
        let Some(index) = now.index else {
            return Ok(WatchOutcome::LeaderChanged);
        };
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(WatchOutcome::TimedOut);
        }
        // A long poll for the next event on the key (a write, a delete, its TTL running out).
        let query = [
            ("wait", "true".to_string()),
            ("waitIndex", (index + 1).to_string()),
        ];
        match self
            .call(Method::GET, keys::LEADER, &query, &[], left)
            .await
        {
            Ok(r) if r.ok() => Ok(WatchOutcome::LeaderChanged),
            Ok(r) if r.error_code() == Some(code::EVENT_INDEX_CLEARED) => {
                Ok(WatchOutcome::LeaderChanged)
            }
            Ok(r) => Err(r.rejected("watch_leader")),
            // The poll ran to its end without an event (the server was there a moment ago).
            Err(DcsError::Unreachable(_)) if Instant::now() >= end => Ok(WatchOutcome::TimedOut),
            Err(e) => Err(context("watch_leader", e)),
        }
    }
}
