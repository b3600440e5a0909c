//! A long-running process's resident set trimmed to what it still uses: the code and read-only data pages mapped
//! while starting (configuration parsing, the CLI, bootstrap, TLS set-up, the first loop) are unmapped once, and
//! only the pages the idle loop touches come back.
//!
//! Why: an idle node's resident memory is almost all file-backed code. The kernel maps text 64 kB at a time
//! ("fault-around"), and start-up touches code spread over nearly every 64 kB of a 10 MB binary, so the daemon kept
//! ~10 MB of its binary mapped for good although its loop uses a fraction of it (`hactl/benches/idle_footprint.rs`
//! measures both). Unmapping is `madvise(MADV_DONTNEED)` on **clean, read-only, private file mappings** only
//! (the binary's text and read-only data, libc's, ld.so's): their pages are the file's own, so a later access maps
//! them again from the page cache (or the file); nothing is lost and nothing is evicted from the page cache, which
//! the other nodes on the machine share. A mapping holding any anonymous (copied-on-write) page, such as the
//! relocated read-only data after `RELRO`, is left alone: dropping it would lose the relocation.

use std::io;

/// What [`release_startup_pages`] unmapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// How many mappings were trimmed.
    pub mappings: usize,
    /// Their resident size before, in kB.
    pub kb: u64,
}

/// One mapping of `/proc/self/smaps` that may be trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    rss_kb: u64,
}

/// The mappings of an smaps text that are safe to unmap: file-backed (an absolute path and a non-zero inode),
/// private, not writable, resident, and without a single anonymous page.
fn clean_file_mappings(smaps: &str) -> Vec<Mapping> {
    struct Head {
        start: usize,
        end: usize,
        eligible: bool,
        rss_kb: u64,
        anon_kb: Option<u64>,
    }
    let mut out = Vec::new();
    let mut current: Option<Head> = None;
    let finish = |h: Option<Head>, out: &mut Vec<Mapping>| {
        if let Some(h) = h {
            if h.eligible && h.rss_kb > 0 && h.anon_kb == Some(0) {
                out.push(Mapping {
                    start: h.start,
                    end: h.end,
                    rss_kb: h.rss_kb,
                });
            }
        }
    };
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                finish(current.take(), &mut out);
                let perms = words.next().unwrap_or("");
                let _offset = words.next();
                let _device = words.next();
                let inode = words.next().unwrap_or("0");
                let path = words.next().unwrap_or("");
                let eligible = perms.len() == 4
                    && perms.as_bytes()[1] == b'-'
                    && perms.as_bytes()[3] == b'p'
                    && inode != "0"
                    && path.starts_with('/');
                current = Some(Head {
                    start,
                    end,
                    eligible,
                    rss_kb: 0,
                    anon_kb: None,
                });
                continue;
            }
        }
        let Some(h) = current.as_mut() else { continue };
        let value = || words.clone().next().and_then(|v| v.parse::<u64>().ok());
        match first {
            "Rss:" => h.rss_kb = value().unwrap_or(0),
            "Anonymous:" => h.anon_kb = value(),
            _ => {}
        }
    }
    finish(current.take(), &mut out);
    out
}

/// Unmaps this process's clean read-only file pages (see the module head); the ones still used come back on their
/// next access. Meant to be called once, after start-up, by a process that then idles for a long time (the daemon
/// after its first loops, the fencer before it waits). Linux only: elsewhere `/proc/self/smaps` is missing and the
/// error says so. A mapping the kernel refuses (a locked one) is skipped.
pub fn release_startup_pages() -> io::Result<Released> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut released = Released::default();
    for m in clean_file_mappings(&smaps) {
        // SAFETY: the range is a whole private, read-only file mapping of this process without anonymous pages, so
        // MADV_DONTNEED drops only page-table entries of file pages, which a later access maps again unchanged.
        let rc = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            released.mappings += 1;
            released.kb += m.rss_kb;
        }
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
563ecc8d3000-563eccb90000 r--p 00000000 fe:00 5341440                    /usr/bin/hactl
Size:               2804 kB
Rss:                1396 kB
Anonymous:             0 kB
563eccb90000-563ecd2b5000 r-xp 002bc000 fe:00 5341440                    /usr/bin/hactl
Size:               7316 kB
Rss:                6476 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
563ecd2b5000-563ecd30b000 r--p 009e0000 fe:00 5341440                    /usr/bin/hactl
Rss:                 344 kB
Anonymous:           344 kB
563ecd30b000-563ecd30d000 rw-p 00a36000 fe:00 5341440                    /usr/bin/hactl
Rss:                   8 kB
Anonymous:             8 kB
563edd0b9000-563edd189000 rw-p 00000000 00:00 0                          [heap]
Rss:                 716 kB
Anonymous:           716 kB
7f05b8dad000-7f05b8f03000 r-xp 00026000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1164 kB
Anonymous:             0 kB
7f05b9000000-7f05b9001000 r--s 00000000 fe:00 1234                       /dev/shm/x
Rss:                   4 kB
Anonymous:             0 kB
7f05b9100000-7f05b9101000 r--p 00000000 fe:00 4321                       /never/touched
Rss:                   0 kB
Anonymous:             0 kB
7ffc149fe000-7ffc14a00000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   8 kB
Anonymous:             0 kB
";

    #[test]
    fn only_clean_private_read_only_file_mappings_are_trimmed() {
        let got = clean_file_mappings(SMAPS);
        let starts: Vec<usize> = got.iter().map(|m| m.start).collect();
        assert_eq!(
            starts,
            vec![0x563ecc8d3000, 0x563eccb90000, 0x7f05b8dad000],
            "the binary's rodata and text and libc's text; not RELRO (copied on write), data, heap, a shared \
             mapping, an untouched one or the vdso"
        );
        assert_eq!(got[1].end, 0x563ecd2b5000);
        assert_eq!(
            got.iter().map(|m| m.rss_kb).sum::<u64>(),
            1396 + 6476 + 1164
        );
    }

    #[test]
    fn a_mapping_without_an_anonymous_line_is_left_alone() {
        let smaps = "7f0000000000-7f0000001000 r-xp 00000000 fe:00 1 /lib/x.so\nRss: 4 kB\n";
        assert!(clean_file_mappings(smaps).is_empty());
    }

    #[test]
    fn the_pages_come_back_unchanged_when_used_again() {
        // This very test binary's code and read-only data are trimmed; running on (and comparing a constant string
        // read from read-only data) proves the pages are mapped again from the file, unchanged.
        let before = std::fs::read_to_string("/proc/self/smaps").unwrap();
        assert!(
            !clean_file_mappings(&before).is_empty(),
            "a test binary has clean file mappings"
        );
        let released = release_startup_pages().unwrap();
        assert!(released.mappings > 0 && released.kb > 0, "{released:?}");
        assert!(SMAPS.starts_with("563ecc8d3000-563eccb90000 r--p"));
        assert_eq!(clean_file_mappings(SMAPS).len(), 3);
    }
}
