//! Measurements: latency histograms and percentiles, outcome counts, and what `/proc` says about
//! a process (CPU ticks, peak resident memory).
//!
//! Owns: the hdrhistogram configuration (microseconds, 3 significant digits, 1 µs to 10 min),
//! the percentile set every report prints (p50/p90/p99/p99.9/max), duration formatting, and the
//! pure parsers of `/proc/PID/stat` and `/proc/PID/status` (proc(5)). Does not own printing
//! (see `report`). Cold path.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency the histograms record (larger values are clamped to it).
pub const MAX_LATENCY: Duration = Duration::from_secs(600);
/// Significant decimal digits kept by the histograms.
const SIGFIGS: u8 = 3;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    pub fn new() -> Latencies {
        // 1 µs to MAX_LATENCY at 3 digits: a valid configuration, so this cannot fail.
        let h = Histogram::new_with_bounds(1, MAX_LATENCY.as_micros() as u64, SIGFIGS)
            .unwrap_or_else(|_| Histogram::new(SIGFIGS).unwrap_or_else(|_| unreachable!()));
        Latencies(h)
    }

    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros().min(MAX_LATENCY.as_micros()) as u64).max(1);
        self.0.saturating_record(us);
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at `quantile` in `[0, 1]`, in microseconds (0 when empty).
    pub fn at(&self, quantile: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_quantile(quantile)
        }
    }

    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            count: self.count(),
            p50: self.at(0.50),
            p90: self.at(0.90),
            p99: self.at(0.99),
            p999: self.at(0.999),
            max: if self.0.is_empty() { 0 } else { self.0.max() },
        }
    }

    /// `(percentile, µs)` points for a percentile plot: from p0 to p99.99 at a log spacing of
    /// the tail (`1 - p` halves per step), then the maximum at 100.
    pub fn curve(&self) -> Vec<(f64, u64)> {
        let mut points = Vec::new();
        if self.0.is_empty() {
            return points;
        }
        let mut tail = 1.0f64;
        while tail > 1e-4 {
            let q = 1.0 - tail;
            points.push((q * 100.0, self.at(q)));
            tail /= 2.0f64.sqrt();
        }
        points.push((99.99, self.at(0.9999)));
        points.push((100.0, self.0.max()));
        points
    }
}

/// The percentiles a report shows, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count, "p50_us": self.p50, "p90_us": self.p90,
            "p99_us": self.p99, "p999_us": self.p999, "max_us": self.max,
        })
    }
}

/// A duration in microseconds for humans: `812µs`, `3.41ms`, `1.20s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1_000.0)
    } else {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    }
}

/// Outcome counts by label (`"200"`, `"503"`, `"reset"`, `"timeout"`, ...), sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcomes(pub BTreeMap<String, u64>);

impl Outcomes {
    pub fn add(&mut self, label: &str, n: u64) {
        *self.0.entry(label.to_string()).or_default() += n;
    }

    pub fn merge(&mut self, other: &Outcomes) {
        for (k, v) in &other.0 {
            self.add(k, *v);
        }
    }

    pub fn get(&self, label: &str) -> u64 {
        self.0.get(label).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Everything but `200`, as `503=4 reset=1` (empty when all succeeded).
    pub fn errors_text(&self) -> String {
        self.0
            .iter()
            .filter(|(k, _)| k.as_str() != "200")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// User and system CPU ticks (`utime`, `stime`: fields 14 and 15 of proc(5) `/proc/PID/stat`).
/// The command name (field 2) may hold spaces and parentheses, so fields are counted after its
/// last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after.split_ascii_whitespace();
    // After the name: state(3) ppid(4) ... utime(14) stime(15): utime is the 12th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// CPU time split into user and kernel (system) time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTimes {
    pub fn total(self) -> Duration {
        self.user + self.system
    }

    /// `self - earlier`, saturating.
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

impl std::ops::Add for CpuTimes {
    type Output = CpuTimes;
    fn add(self, o: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user + o.user,
            system: self.system + o.system,
        }
    }
}

impl std::iter::Sum for CpuTimes {
    fn sum<I: Iterator<Item = CpuTimes>>(iter: I) -> CpuTimes {
        iter.fold(CpuTimes::default(), |a, b| a + b)
    }
}

/// The parent PID (field 4 of `/proc/PID/stat`).
pub fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    after.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// `VmHWM` (peak resident set size) in KiB from `/proc/PID/status`.
pub fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, `getconf CLK_TCK`): fixed at 100
/// by the kernel ABI on every architecture Linux exposes it for (time(7)); `sysconf` would need
/// an `unsafe` call the workspace denies.
pub const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// CPU time of process `pid` so far.
pub fn cpu_time(pid: u32) -> Option<CpuTimes> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (user, system) = parse_stat_cpu_ticks(&stat)?;
    let ms = |ticks: u64| Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_SECOND);
    Some(CpuTimes {
        user: ms(user),
        system: ms(system),
    })
}

/// `VmRSS` (resident set size) in KiB from `/proc/PID/status`.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident memory of `pid` now, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    parse_vm_rss_kib(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// Peak resident memory of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    parse_vm_hwm_kib(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The PIDs whose parent is `pid` (one level; nginx's workers under its master).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| parse_stat_ppid(&s))
                == Some(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (nginx: worker) S 4241 4241 4241 0 -1 4194624 1234 0 0 0 170 35 0 0 20 0 1 0 99 123456789 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        assert_eq!(parse_stat_cpu_ticks(STAT), Some((170, 35)));
        assert_eq!(parse_stat_ppid(STAT), Some(4241));
        let odd = STAT.replace("(nginx: worker)", "(a) b) c)");
        assert_eq!(parse_stat_cpu_ticks(&odd), Some((170, 35)));
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1"), None);
        assert_eq!(parse_stat_cpu_ticks(""), None);
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tpyrogate\nVmPeak:\t  99999 kB\nVmHWM:\t   13952 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm_kib(status), Some(13952));
        assert_eq!(parse_vm_hwm_kib("Name: x\n"), None);
    }

    #[test]
    fn percentiles_of_one_to_a_thousand_milliseconds() {
        let mut h = Latencies::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let p = h.percentiles();
        assert_eq!(p.count, 1000);
        // hdrhistogram reports values at its bucket resolution (3 significant digits).
        assert_eq!(p.p50, 500_223);
        assert_eq!(p.p90, 900_095);
        assert_eq!(p.p99, 990_207);
        assert_eq!(p.p999, 999_423);
        assert_eq!(p.max, 1_000_447);
    }

    #[test]
    fn an_empty_histogram_reports_zeros_and_no_curve() {
        let h = Latencies::new();
        assert_eq!(h.percentiles(), Percentiles::default());
        assert!(h.curve().is_empty());
    }

    #[test]
    fn durations_are_formatted_by_magnitude() {
        assert_eq!(fmt_us(812), "812µs");
        assert_eq!(fmt_us(3_414), "3.41ms");
        assert_eq!(fmt_us(1_204_000), "1.20s");
    }

    #[test]
    fn outcomes_list_only_failures_in_order() {
        let mut o = Outcomes::default();
        o.add("200", 10);
        o.add("reset", 1);
        o.add("503", 4);
        assert_eq!(o.errors_text(), "503=4 reset=1");
        assert_eq!(o.total(), 15);
    }

    #[test]
    fn the_curve_rises_to_the_maximum() {
        let mut h = Latencies::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        let c = h.curve();
        assert_eq!(c.first().map(|p| p.0), Some(0.0));
        assert_eq!(c.last(), Some(&(100.0, 10_007)));
        assert!(c.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }
}
