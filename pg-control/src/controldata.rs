//! Reading a data directory without a running server: pg_controldata's output, timeline history files, LSNs.
//! All pure parsing, so a stopped node still reports its position and timeline (the rejoin check needs them).

use std::collections::BTreeMap;
use std::path::Path;

use ha_core::pg::TimelineSwitch;

/// Parses an LSN as PostgreSQL prints it (`16/B374D848`) into a byte position.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    Some((hi << 32) | lo)
}

/// The fields of pg_controldata we use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlData {
    pub system_id: String,
    /// "shut down", "shut down in recovery", "in production", "in archive recovery", "in crash recovery"...
    pub state: String,
    pub checkpoint_lsn: u64,
    pub checkpoint_timeline: u64,
    pub min_recovery_lsn: u64,
    pub min_recovery_timeline: u64,
    /// "Bytes per WAL segment" (16 MiB unless initdb --wal-segsize).
    pub wal_segment_bytes: u64,
    /// "Latest checkpoint's REDO WAL file": the segment holding a clean shutdown's checkpoint record.
    pub redo_wal_file: Option<String>,
    /// The recovery-sensitive settings the control file records (parameter name -> value): a standby must run
    /// with at least these, or recovery aborts with "insufficient parameter settings".
    pub recovery_minimums: BTreeMap<String, u64>,
}

/// Parameters a standby must set at least as high as the primary's, with pg_controldata's name for each.
pub const RECOVERY_SENSITIVE: &[(&str, &str)] = &[
    ("max_connections", "max_connections setting"),
    ("max_worker_processes", "max_worker_processes setting"),
    ("max_wal_senders", "max_wal_senders setting"),
    ("max_prepared_transactions", "max_prepared_xacts setting"),
    ("max_locks_per_transaction", "max_locks_per_xact setting"),
];

impl ControlData {
    pub fn parse(text: &str) -> Option<ControlData> {
        let fields: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let num = |k: &str| {
            fields
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let lsn = |k: &str| fields.get(k).and_then(|v| parse_lsn(v)).unwrap_or(0);
        Some(ControlData {
            system_id: fields.get("Database system identifier")?.to_string(),
            state: fields
                .get("Database cluster state")
                .unwrap_or(&"")
                .to_string(),
            checkpoint_lsn: lsn("Latest checkpoint location"),
            checkpoint_timeline: num("Latest checkpoint's TimeLineID"),
            min_recovery_lsn: lsn("Minimum recovery ending location"),
            min_recovery_timeline: num("Min recovery ending loc's timeline"),
            wal_segment_bytes: match num("Bytes per WAL segment") {
                0 => 16 * 1024 * 1024,
                n => n,
            },
            redo_wal_file: fields
                .get("Latest checkpoint's REDO WAL file")
                .filter(|f| f.len() == 24 && f.chars().all(|c| c.is_ascii_hexdigit()))
                .map(|f| f.to_string()),
            recovery_minimums: RECOVERY_SENSITIVE
                .iter()
                .filter_map(|(param, field)| {
                    let v = fields.get(field)?.parse::<u64>().ok()?;
                    Some((param.to_string(), v))
                })
                .collect(),
        })
    }

    /// Shut down cleanly (as a primary or as a standby).
    pub fn clean_shutdown(&self) -> bool {
        self.state == "shut down" || self.state == "shut down in recovery"
    }

    /// The timeline a stopped server is on: a standby's minimum recovery point may already be on a later one than
    /// its last checkpoint (after pg_rewind, or a restartpoint before the switch).
    pub fn timeline(&self) -> u64 {
        self.checkpoint_timeline.max(self.min_recovery_timeline)
    }

    /// How far the stopped server's WAL goes as far as the control file knows: a cleanly stopped primary's shutdown
    /// checkpoint, or a standby's minimum recovery point when it is later.
    pub fn lsn(&self) -> u64 {
        self.checkpoint_lsn.max(self.min_recovery_lsn)
    }
}

/// An upper bound of how far the WAL in `pg_wal/` goes on `timeline`: the end of its highest segment file.
///
/// A server that crashed wrote WAL after its last checkpoint, which the control file does not show. Taking the
/// end of the last segment overestimates (a segment may be partly written, or recycled ahead), which makes the
/// rejoin check err towards a needless pg_rewind rather than towards following with diverged data.
pub fn wal_end_upper_bound(data_dir: &Path, timeline: u64, segment_bytes: u64) -> Option<u64> {
    let dir = std::fs::read_dir(data_dir.join("pg_wal")).ok()?;
    dir.filter_map(|e| {
        let name = e.ok()?.file_name().to_str()?.to_string();
        segment_end(&name, timeline, segment_bytes)
    })
    .max()
}

/// The end LSN of WAL segment file `name` (24 hex digits: timeline, log, segment) if it is on `timeline`.
pub fn segment_end(name: &str, timeline: u64, segment_bytes: u64) -> Option<u64> {
    if name.len() != 24 || !name.chars().all(|c| c.is_ascii_hexdigit()) || segment_bytes == 0 {
        return None;
    }
    let tli = u64::from_str_radix(&name[0..8], 16).ok()?;
    if tli != timeline {
        return None;
    }
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    let segno = log * (0x1_0000_0000 / segment_bytes) + seg;
    Some((segno + 1) * segment_bytes)
}

/// The highest timeline a `.history` file in `pg_wal/` names (0 when none): a server that switched timelines and
/// crashed before its next checkpoint has the history file, not yet the control file entry.
pub fn highest_history_timeline(data_dir: &Path) -> u64 {
    std::fs::read_dir(data_dir.join("pg_wal"))
        .map(|d| {
            d.filter_map(|e| {
                let name = e.ok()?.file_name().to_str()?.to_string();
                u64::from_str_radix(name.strip_suffix(".history")?, 16).ok()
            })
            .max()
            .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Parses a `.history` file: "1\t0/3000148\tno recovery target specified" per line.
pub fn parse_history(text: &str) -> Vec<TimelineSwitch> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let timeline = it.next()?.parse().ok()?;
            let lsn = parse_lsn(it.next()?)?;
            Some(TimelineSwitch { timeline, lsn })
        })
        .collect()
}

/// The history of the highest timeline found in `pg_wal/` (each history file holds all earlier switches).
pub fn read_history(data_dir: &Path) -> Vec<TimelineSwitch> {
    let Ok(dir) = std::fs::read_dir(data_dir.join("pg_wal")) else {
        return Vec::new();
    };
    let newest = dir
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_str()?.to_string();
            let tli = name.strip_suffix(".history")?;
            u64::from_str_radix(tli, 16).ok().map(|t| (t, name))
        })
        .max();
    match newest {
        Some((_, name)) => std::fs::read_to_string(data_dir.join("pg_wal").join(name))
            .map(|t| parse_history(&t))
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse() {
        assert_eq!(parse_lsn("0/3000148"), Some(0x0300_0148));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(parse_lsn("garbage"), None);
    }

    #[test]
    fn controldata_of_a_rewound_standby_takes_the_later_timeline() {
        let text = "pg_control version number:            1300\n\
            Database system identifier:           7311111111111111111\n\
            Database cluster state:               shut down in recovery\n\
            Latest checkpoint location:           0/3000060\n\
            Latest checkpoint's TimeLineID:       1\n\
            Minimum recovery ending location:     0/3000148\n\
            Min recovery ending loc's timeline:   2\n\
            max_connections setting:              100\n\
            max_worker_processes setting:         8\n\
            max_wal_senders setting:              10\n\
            max_prepared_xacts setting:           0\n\
            max_locks_per_xact setting:           64\n";
        let cd = ControlData::parse(text).unwrap();
        assert_eq!(cd.recovery_minimums["max_connections"], 100);
        assert_eq!(cd.recovery_minimums["max_prepared_transactions"], 0);
        assert_eq!(cd.recovery_minimums["max_locks_per_transaction"], 64);
        assert_eq!(cd.recovery_minimums.len(), 5);
        assert_eq!(cd.system_id, "7311111111111111111");
        assert!(cd.clean_shutdown());
        assert_eq!(cd.timeline(), 2);
        assert_eq!(cd.lsn(), 0x0300_0148);
    }

    #[test]
    fn segment_names_give_their_end() {
        let seg = 16 * 1024 * 1024;
        assert_eq!(
            segment_end("000000010000000000000003", 1, seg),
            Some(0x0400_0000)
        );
        assert_eq!(
            segment_end("000000010000000100000002", 1, seg),
            Some((1 << 32) + 3 * seg)
        );
        assert_eq!(
            segment_end("000000020000000000000003", 1, seg),
            None,
            "other timeline"
        );
        assert_eq!(segment_end("00000002.history", 2, seg), None);
    }

    #[test]
    fn history_lines_parse() {
        let h =
            parse_history("1\t0/3000148\tno recovery target specified\n\n2\t0/5000000\tbefore x\n");
        assert_eq!(
            h,
            vec![
                TimelineSwitch {
                    timeline: 1,
                    lsn: 0x0300_0148
                },
                TimelineSwitch {
                    timeline: 2,
                    lsn: 0x0500_0000
                }
            ]
        );
    }
}
