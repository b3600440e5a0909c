//! **No promotion of a member lagging past `maximum_lag_on_failover`.** If this breaks, a failover throws away more
//! committed data than the operator allowed.

use super::Violation;
use crate::driver::CycleReport;

/// This invariant's name in a [`Violation`].
pub const NAME: &str = "promotion_lag";

/// A violation if `report`'s loop promoted `node` more than `maximum_lag_bytes` behind the last primary position it
/// knew (`status.optime` in the loop's snapshot).
pub fn check(node: &str, report: &CycleReport, maximum_lag_bytes: u64) -> Option<Violation> {
    if !report.promoted() {
        return None;
    }
    let last = report
        .cluster
        .as_ref()
        .ok()
        .and_then(|c| c.last_leader_lsn())?;
    let lag = last.saturating_sub(report.pg.lsn);
    (lag > maximum_lag_bytes).then(|| Violation {
        at: report.now,
        invariant: NAME,
        detail: format!("{node} was promoted {lag} bytes behind the last primary position (limit {maximum_lag_bytes})"),
    })
}
