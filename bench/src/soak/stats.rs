//! Per-minute figures: latencies by operation, errors by kind, and the relay process's RSS and
//! open descriptors read from `/proc`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// What happened since the last report.
#[derive(Default)]
struct Window {
    /// Latencies (ms) of successful operations, by operation.
    latencies: BTreeMap<&'static str, Vec<f64>>,
    /// Failures by operation and reason, counted.
    errors: BTreeMap<String, u64>,
}

/// The figures the load tasks add to; one report empties them.
#[derive(Default)]
pub(crate) struct Stats {
    window: Mutex<Window>,
}

/// One minute's figures.
pub(crate) struct Minute {
    /// Latencies by operation, unsorted.
    pub(crate) latencies: BTreeMap<&'static str, Vec<f64>>,
    /// Errors by kind.
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `op` succeeded in `took`.
    pub(crate) fn ok(&self, op: &'static str, took: Duration) {
        self.lock()
            .latencies
            .entry(op)
            .or_default()
            .push(took.as_secs_f64() * 1000.0);
    }

    /// `op` failed; `why` is kept short (its first line, 160 characters) to group alike errors.
    pub(crate) fn error(&self, op: &'static str, why: &str) {
        let first: String = why.lines().next().unwrap_or("").chars().take(160).collect();
        *self
            .lock()
            .errors
            .entry(format!("{op}: {first}"))
            .or_default() += 1;
    }

    /// Takes the figures gathered since the last call.
    pub(crate) fn take(&self) -> Minute {
        let window = std::mem::take(&mut *self.lock());
        Minute {
            latencies: window.latencies,
            errors: window.errors,
        }
    }
}

/// The `p`th percentile (0–100, nearest rank) of `sorted`.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The process's resident memory (VmRSS, KiB) and open descriptors, from `/proc/{pid}`.
pub(crate) fn process(pid: u32) -> std::io::Result<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok((rss, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
    }

    #[test]
    fn errors_group_by_their_first_line() {
        let stats = Stats::default();
        stats.error("get", "status 500\nbody");
        stats.error("get", "status 500\nother body");
        stats.ok("get", Duration::from_millis(2));
        let minute = stats.take();
        assert_eq!(minute.errors.get("get: status 500"), Some(&2));
        assert_eq!(minute.latencies["get"].len(), 1);
        assert!(stats.take().errors.is_empty());
    }

    #[test]
    fn reads_this_process() {
        let (rss, fds) = process(std::process::id()).expect("/proc");
        assert!(rss > 0);
        assert!(fds > 0);
    }
}
