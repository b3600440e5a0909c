//! The cluster model, shaped like Patroni's so that DCS values stay byte-compatible: every value type keeps the
//! JSON fields it does not know in an `extra` map, so reading a value and writing it back loses nothing.

pub mod cluster;
pub mod codec;
pub mod config;
mod lenient;
pub mod member;
pub mod slots;
pub mod standby;
pub mod tags;
pub mod timing;

pub use cluster::{Cluster, Failover, HistoryEntry, Leader, Status, SyncState, Versioned};
pub use codec::{KeyPath, RawEntry};
pub use config::{DynamicPostgresql, GlobalConfig, SyncMode};
pub use member::{Member, MemberData, PgStateName, Role};
pub use slots::{slot_name, IgnoreSlot, PermanentSlot, SlotKind};
pub use standby::{url_host, StandbyCluster};
pub use tags::Tags;
pub use timing::{ConfigError, Timing};
