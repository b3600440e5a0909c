//! `/dev/watchdog` (Patroni's `watchdog` section): opened when this node leads, its timeout set to ttl −
//! `safety_margin`, pinged at every lock renewal, closed with the magic close (`V`) when the node stops leading,
//! is paused, or shuts down. If the daemon freezes the kernel resets the machine. [`DeviceOrFencer`] makes the
//! working device the node's fence and arms the process fencer ([`super::fencer`]) only while there is none (no
//! device configured, or its keepalive fails): one fence at a time, so a frozen daemon's primary is stopped by the
//! machine's reset where there is a device (as Patroni) and by the fencer where there is not.
//!
//! The `testing` driver is Patroni's acceptance harness: a named pipe that takes `1` (keepalive), `V` (magic
//! close) and `Ctimeout=N\n` (set the timeout) as writes instead of ioctls.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ha_core::sync::lock;
use ha_core::time::Millis;
use ha_core::watchdog::Watchdog;
use tracing::{error, info, warn};

use crate::config::watchdog::{WatchdogConfig, WatchdogDriver, WatchdogMode};

/// `_IOWR('W', 6, int)`: set the timeout in seconds (the driver writes back what it applied).
const WDIOC_SETTIMEOUT: libc::c_ulong = 0xC004_5706;

/// Why the device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    #[error("`watchdog.device` {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`watchdog.device` {path}: cannot set a {timeout} s timeout: {source}")]
    Timeout {
        path: PathBuf,
        timeout: u32,
        #[source]
        source: std::io::Error,
    },
}

struct Open {
    file: File,
    timeout_s: u32,
}

/// A watchdog device driven as Patroni drives it.
pub struct DeviceWatchdog {
    config: WatchdogConfig,
    ttl_s: Mutex<f64>,
    open: Mutex<Option<Open>>,
    /// The last keepalive failed: said once, not at every renewal, until one succeeds again.
    failing: std::sync::atomic::AtomicBool,
}

impl DeviceWatchdog {
    /// `None` when `watchdog.mode` is off. With `required`, the device is opened (and closed again) now: a node
    /// that could not use it refuses to start, naming the key.
    pub fn from_config(
        config: &WatchdogConfig,
        ttl_s: f64,
    ) -> Result<Option<DeviceWatchdog>, WatchdogError> {
        if config.mode == WatchdogMode::Off {
            return Ok(None);
        }
        let w = DeviceWatchdog {
            config: config.clone(),
            ttl_s: Mutex::new(ttl_s),
            open: Mutex::new(None),
            failing: std::sync::atomic::AtomicBool::new(false),
        };
        if config.mode == WatchdogMode::Required {
            let probe = open_device(&config.device, config.driver)?;
            magic_close(probe, config.driver);
        }
        Ok(Some(w))
    }

    fn timeout_s(&self) -> u32 {
        self.config.timeout_s(*lock(&self.ttl_s))
    }

    fn keepalive(&self) -> Result<(), WatchdogError> {
        let want = self.timeout_s();
        let mut open = lock(&self.open);
        let o = match &mut *open {
            Some(o) => o,
            None => open.insert(Open {
                file: open_device(&self.config.device, self.config.driver)?,
                timeout_s: 0,
            }),
        };
        if o.timeout_s != want {
            set_timeout(&mut o.file, self.config.driver, want).map_err(|source| {
                WatchdogError::Timeout {
                    path: self.config.device.clone(),
                    timeout: want,
                    source,
                }
            })?;
            info!(device = %self.config.device.display(), timeout_s = want, "watchdog activated");
            o.timeout_s = want;
        }
        o.file
            .write_all(b"1")
            .map_err(|source| WatchdogError::Open {
                path: self.config.device.clone(),
                source,
            })
    }
}

fn open_device(path: &Path, driver: WatchdogDriver) -> Result<File, WatchdogError> {
    // The test harness's pipe (or a file standing in for it) is appended to; a device ignores offsets anyway.
    OpenOptions::new()
        .write(true)
        .append(driver == WatchdogDriver::Testing)
        .open(path)
        .map_err(|source| WatchdogError::Open {
            path: path.to_path_buf(),
            source,
        })
}

fn set_timeout(file: &mut File, driver: WatchdogDriver, timeout: u32) -> std::io::Result<()> {
    match driver {
        WatchdogDriver::Testing => file.write_all(format!("Ctimeout={timeout}\n").as_bytes()),
        WatchdogDriver::Linux => {
            let mut t = timeout as libc::c_int;
            // SAFETY: WDIOC_SETTIMEOUT reads and writes one int through the pointer, which lives across the call.
            let r = unsafe {
                libc::ioctl(
                    file.as_raw_fd(),
                    WDIOC_SETTIMEOUT,
                    &mut t as *mut libc::c_int,
                )
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }
    }
}

/// The magic close: the device stops counting when it is closed after a `V`.
fn magic_close(mut file: File, _driver: WatchdogDriver) {
    if let Err(e) = file.write_all(b"V") {
        warn!(error = %e, "watchdog magic close failed: the device may still fire");
    }
}

impl Watchdog for DeviceWatchdog {
    fn arm(&self, _deadline: Millis) {
        use std::sync::atomic::Ordering;
        match self.keepalive() {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    info!("watchdog keepalive works again");
                }
            }
            // The process fencer still covers the node; `required` was checked at start.
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    error!(error = %e, "watchdog keepalive failed (said once until it works again)");
                }
            }
        }
    }

    fn disarm(&self) {
        if let Some(o) = lock(&self.open).take() {
            magic_close(o.file, self.config.driver);
            info!(device = %self.config.device.display(), "watchdog closed");
        }
    }

    fn ttl_changed(&self, ttl_ms: u64) {
        *lock(&self.ttl_s) = ttl_ms as f64 / 1000.0;
    }
}

impl DeviceWatchdog {
    /// Whether the last keepalive reached the device.
    fn working(&self) -> bool {
        !self.failing.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The device when it works, the process fencer otherwise (see the module head).
pub struct DeviceOrFencer {
    pub device: Option<DeviceWatchdog>,
    pub fencer: Option<Box<dyn Watchdog>>,
    fencer_armed: std::sync::atomic::AtomicBool,
}

impl DeviceOrFencer {
    pub fn new(device: Option<DeviceWatchdog>, fencer: Option<Box<dyn Watchdog>>) -> Self {
        DeviceOrFencer {
            device,
            fencer,
            fencer_armed: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Watchdog for DeviceOrFencer {
    fn arm(&self, deadline: Millis) {
        use std::sync::atomic::Ordering;
        let device_fences = match &self.device {
            Some(d) => {
                d.arm(deadline);
                d.working()
            }
            None => false,
        };
        let Some(f) = &self.fencer else { return };
        if device_fences {
            if self.fencer_armed.swap(false, Ordering::Relaxed) {
                f.disarm();
            }
        } else {
            f.arm(deadline);
            self.fencer_armed.store(true, Ordering::Relaxed);
        }
    }

    fn disarm(&self) {
        if let Some(d) = &self.device {
            d.disarm();
        }
        if let Some(f) = &self.fencer {
            f.disarm();
        }
        self.fencer_armed
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    fn ttl_changed(&self, ttl_ms: u64) {
        if let Some(d) = &self.device {
            d.ttl_changed(ttl_ms);
        }
        if let Some(f) = &self.fencer {
            f.ttl_changed(ttl_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fencer that records what it was told.
    #[derive(Default, Clone)]
    struct Recorder(std::sync::Arc<Mutex<Vec<String>>>);
    impl Watchdog for Recorder {
        fn arm(&self, deadline: Millis) {
            lock(&self.0).push(format!("arm {}", deadline.0));
        }
        fn disarm(&self) {
            lock(&self.0).push("disarm".into());
        }
    }

    #[test]
    fn a_working_device_is_the_fence_and_the_fencer_covers_its_failure() {
        let dir = std::env::temp_dir().join(format!("hactl-wd2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let device = dir.join("watchdog");
        std::fs::write(&device, "").unwrap();
        let config = WatchdogConfig {
            mode: WatchdogMode::Automatic,
            device: device.clone(),
            safety_margin: 5.0,
            driver: WatchdogDriver::Testing,
        };
        let fencer = Recorder::default();
        let w = DeviceOrFencer::new(
            DeviceWatchdog::from_config(&config, 30.0).unwrap(),
            Some(Box::new(fencer.clone())),
        );
        w.arm(Millis(10));
        assert!(
            lock(&fencer.0).is_empty(),
            "the device fences: the fencer stays idle"
        );
        // The device goes away: the fencer takes over at the same deadline, and steps back when it returns.
        std::fs::remove_dir_all(&dir).unwrap();
        *lock(&w.device.as_ref().unwrap().open) = None;
        w.arm(Millis(20));
        assert_eq!(*lock(&fencer.0), ["arm 20"]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&device, "").unwrap();
        w.arm(Millis(30));
        assert_eq!(*lock(&fencer.0), ["arm 20", "disarm"]);
        w.arm(Millis(40));
        assert_eq!(lock(&fencer.0).len(), 2, "no disarm per loop");
        let _ = std::fs::remove_dir_all(&dir);

        // No device at all: the fencer is the fence.
        let fencer = Recorder::default();
        let w = DeviceOrFencer::new(None, Some(Box::new(fencer.clone())));
        w.arm(Millis(5));
        w.disarm();
        assert_eq!(*lock(&fencer.0), ["arm 5", "disarm"]);
    }

    #[test]
    fn the_testing_driver_writes_patronis_protocol() {
        let dir = std::env::temp_dir().join(format!("hactl-wd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let device = dir.join("watchdog");
        std::fs::write(&device, "").unwrap();
        let config = WatchdogConfig {
            mode: WatchdogMode::Required,
            device: device.clone(),
            safety_margin: 5.0,
            driver: WatchdogDriver::Testing,
        };
        let w = DeviceWatchdog::from_config(&config, 30.0)
            .unwrap()
            .expect("a watchdog");
        w.arm(Millis(0));
        w.arm(Millis(0));
        w.ttl_changed(20_000);
        w.arm(Millis(0));
        w.disarm();
        // The start-up probe's magic close, then: timeout 25 (30 − 5), two pings, timeout 15, a ping, close.
        assert_eq!(
            std::fs::read_to_string(&device).unwrap(),
            "VCtimeout=25\n11Ctimeout=15\n1V"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn required_without_a_device_refuses_naming_the_key() {
        let config = WatchdogConfig {
            mode: WatchdogMode::Required,
            device: PathBuf::from("/nonexistent/watchdog"),
            ..WatchdogConfig::default()
        };
        let e = DeviceWatchdog::from_config(&config, 30.0)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("watchdog.device"), "{e}");
        assert!(
            DeviceWatchdog::from_config(&WatchdogConfig::default(), 30.0)
                .unwrap()
                .is_none()
        );
    }
}
