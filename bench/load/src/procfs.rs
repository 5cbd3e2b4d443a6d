//! A process's CPU time and memory from /proc (same machine), and the open-file limit.

use std::sync::OnceLock;

#[cfg(target_os = "linux")]
mod sys {
    use std::os::raw::{c_int, c_long, c_ulong};

    #[repr(C)]
    struct RLimit {
        cur: c_ulong,
        max: c_ulong,
    }

    unsafe extern "C" {
        fn sysconf(name: c_int) -> c_long;
        fn getrlimit(resource: c_int, rlim: *mut RLimit) -> c_int;
        fn setrlimit(resource: c_int, rlim: *const RLimit) -> c_int;
    }

    const SC_CLK_TCK: c_int = 2;
    #[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
    const RLIMIT_NOFILE: c_int = 7;
    #[cfg(any(target_arch = "mips", target_arch = "mips64"))]
    const RLIMIT_NOFILE: c_int = 5;

    pub fn clk_tck() -> u64 {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { sysconf(SC_CLK_TCK) };
        if t > 0 { t as u64 } else { 100 }
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit; returns (soft, hard) after.
    pub fn raise_nofile() -> Option<(u64, u64)> {
        let mut r = RLimit { cur: 0, max: 0 };
        // SAFETY: r is a valid, writable rlimit.
        if unsafe { getrlimit(RLIMIT_NOFILE, &mut r) } != 0 {
            return None;
        }
        if r.cur < r.max {
            let want = RLimit {
                cur: r.max,
                max: r.max,
            };
            // SAFETY: want is a valid rlimit.
            if unsafe { setrlimit(RLIMIT_NOFILE, &want) } == 0 {
                r.cur = r.max;
            }
        }
        Some((r.cur, r.max))
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub fn clk_tck() -> u64 {
        100
    }
    pub fn raise_nofile() -> Option<(u64, u64)> {
        None
    }
}

pub use sys::raise_nofile;

/// utime + stime of a process (`"self"` or a PID), in seconds (fields 14 and 15 of
/// /proc/PID/stat).
pub fn cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from after its closing ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // after[0] is field 3 (state): field 14 is index 11, field 15 index 12.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    static TCK: OnceLock<u64> = OnceLock::new();
    Some(ticks as f64 / *TCK.get_or_init(sys::clk_tck) as f64)
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
