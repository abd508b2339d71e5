//! Reading memory and CPU figures from Linux's `/proc`.

use std::fs;

use anyhow::{anyhow, bail, Context, Result};

/// A `kB` field (`VmRSS`, `VmHWM`, ...) of a `/proc/<pid>/status` text, in KiB.
pub fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// A `kB` field of this process's `/proc/self/status`, in KiB.
pub fn self_status_kib(field: &str) -> Result<u64> {
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status_field_kib(&status, field).ok_or_else(|| anyhow!("no {field} in /proc/self/status"))
}

/// `utime + stime` in clock ticks from a `/proc/<pid>/stat` text (fields 14 and 15).
pub fn stat_cpu_ticks(stat: &str) -> Result<u64> {
    // The command name (field 2) may hold spaces and parentheses; it ends at the last `)`.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("no `)` in stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    if fields.len() < 13 {
        bail!(
            "expected at least 15 fields in stat, found {}",
            fields.len() + 2
        );
    }
    // `fields[0]` is field 3 (state), so field 14 (utime) is `fields[11]`.
    let utime: u64 = fields[11].parse().context("parsing utime")?;
    let stime: u64 = fields[12].parse().context("parsing stime")?;
    Ok(utime + stime)
}

/// The CPU time of this whole process, exited threads included, from `/proc/self/stat`.
///
/// Clock ticks are 10 ms on most kernels (`USER_HZ` = 100, assumed here): coarse, but they count
/// every thread the process ever had.
pub fn self_cpu_ns_from_ticks() -> Result<u64> {
    let stat = fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    Ok(stat_cpu_ticks(&stat)? * 10_000_000)
}

/// The nanoseconds each live thread of this process has run, by thread id, from
/// `/proc/self/task/*/schedstat` (its first field). `None` where the kernel lacks schedstat.
pub fn self_thread_run_ns() -> Option<Vec<(u64, u64)>> {
    let mut threads = Vec::new();
    for entry in fs::read_dir("/proc/self/task").ok()? {
        let entry = entry.ok()?;
        let Ok(thread_id) = entry.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        // A thread may exit between listing and reading; skip it.
        let Ok(schedstat) = fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        let run_ns = schedstat.split_whitespace().next()?.parse().ok()?;
        threads.push((thread_id, run_ns));
    }
    Some(threads)
}

/// CPU nanoseconds run between two [`self_thread_run_ns`] snapshots: threads alive in both count
/// their difference, threads born in between count in full, threads that died in between are lost.
pub fn run_ns_between(before: &[(u64, u64)], after: &[(u64, u64)]) -> u64 {
    after
        .iter()
        .map(|&(thread_id, run_after)| {
            let run_before = before
                .iter()
                .find(|&&(id, _)| id == thread_id)
                .map_or(0, |&(_, run_ns)| run_ns);
            run_after.saturating_sub(run_before)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields_from_status() {
        let status = "Name:\tbench\nVmHWM:\t   12345 kB\nVmRSS:\t    6789 kB\nThreads:\t3\n";
        assert_eq!(status_field_kib(status, "VmHWM"), Some(12345));
        assert_eq!(status_field_kib(status, "VmRSS"), Some(6789));
        assert_eq!(status_field_kib(status, "VmSwap"), None);
    }

    #[test]
    fn reads_cpu_ticks_past_a_tricky_command_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 100 1000 200";
        assert_eq!(stat_cpu_ticks(stat).unwrap(), 12);
        assert!(stat_cpu_ticks("42 (short) S 1").is_err());
    }

    #[test]
    fn run_time_between_snapshots_counts_new_threads_in_full() {
        let before = [(1, 100), (2, 50), (3, 10)];
        let after = [(1, 130), (2, 50), (4, 7)];
        assert_eq!(run_ns_between(&before, &after), 30 + 7);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        assert!(self_status_kib("VmRSS").unwrap() > 0);
        self_cpu_ns_from_ticks().unwrap();
    }
}
