//! Where the systems under test run: how many cores the gateway gets, and which CPUs the
//! gateway and the load (generator and sinks) are pinned to.
//!
//! Owns: the `--cores` value (`N` or `default`: pyrogate's own default, every core, and nginx
//! with one worker per CPU), the CPU list syntax of Linux (`0-3,6`, `cpuset(7)` "List
//! format"), the pinning plan (the gateway on the first N CPUs this process may use, the load
//! on the rest; none where no CPU is left over) and carrying it out with `taskset(1)` from
//! util-linux: `taskset -a -p -c LIST PID` for this process (every thread; threads started
//! later inherit it), `taskset -c LIST BIN ...` (which execs, so the PID stays the gateway's)
//! for a system. The workspace forbids `unsafe`, so no `sched_setaffinity` call of our own.
//! Does not own starting or measuring the systems (`compare`). Cold path.

use std::fmt;
use std::process::{Command, Stdio};

/// Core threads of pyrogate and worker processes of nginx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cores {
    /// `--cores=N` for pyrogate, `worker_processes N` for nginx.
    Count(usize),
    /// pyrogate without `--cores` (every core), nginx with one worker per CPU.
    Default,
}

impl Cores {
    /// `default` or a count ≥ 1.
    pub fn parse(s: &str) -> Option<Cores> {
        match s.trim() {
            "default" => Some(Cores::Default),
            n => n.parse().ok().filter(|&n| n >= 1).map(Cores::Count),
        }
    }

    /// What pyrogate is started with: `Some(N)` → `--cores=N`, `None` → no flag.
    pub fn pyrogate_flag(self) -> Option<usize> {
        match self {
            Cores::Count(n) => Some(n),
            Cores::Default => None,
        }
    }

    /// Threads (pyrogate) or workers (nginx) on a machine with `cpus` CPUs.
    pub fn threads(self, cpus: usize) -> usize {
        match self {
            Cores::Count(n) => n,
            Cores::Default => cpus.max(1),
        }
    }

    /// `--cores=1 (nginx: 1 worker)`, `default: every core, 2 (nginx: 2 workers)`.
    pub fn describe(self, cpus: usize) -> String {
        let n = self.threads(cpus);
        let workers = if n == 1 { "worker" } else { "workers" };
        match self {
            Cores::Count(_) => format!("--cores={n} (nginx: {n} {workers})"),
            Cores::Default => {
                format!("default: every core, {n} (nginx: {n} {workers})")
            }
        }
    }
}

impl fmt::Display for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cores::Count(n) => write!(f, "{n}"),
            Cores::Default => f.write_str("default"),
        }
    }
}

/// Parses a Linux CPU list (`0-3,6,8-9`); `None` when malformed or empty.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    out.sort_unstable();
    out.dedup();
    (!out.is_empty()).then_some(out)
}

/// A CPU list as `taskset -c` takes it (`0,1,2`).
pub fn cpu_list_text(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The `Cpus_allowed_list` of a `/proc/PID/status` text.
pub fn parse_allowed_cpus(status: &str) -> Option<Vec<usize>> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(parse_cpu_list)
}

/// The CPUs this process may run on (`/proc/self/status`), else `0..available_parallelism`.
pub fn allowed_cpus() -> Vec<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_allowed_cpus(&s))
        .unwrap_or_else(|| {
            (0..std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
                .collect()
        })
}

/// Where a comparison's processes run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinning {
    /// The gateway (pyrogate, nginx) on `gateway`, this process (generator, sinks) on `load`.
    Pinned {
        gateway: Vec<usize>,
        load: Vec<usize>,
    },
    /// Everything shares every CPU; the reason, for the report.
    NotPinned(String),
}

impl Pinning {
    /// The gateway's CPU list for `taskset -c`, when pinned.
    pub fn gateway_list(&self) -> Option<String> {
        match self {
            Pinning::Pinned { gateway, .. } => Some(cpu_list_text(gateway)),
            Pinning::NotPinned(_) => None,
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        match self {
            Pinning::Pinned { gateway, load } => format!(
                "pinned: gateway on CPU {}, generator and sinks on CPU {}",
                cpu_list_text(gateway),
                cpu_list_text(load)
            ),
            Pinning::NotPinned(why) => why.clone(),
        }
    }
}

/// The plan: with `requested` and more CPUs than the gateway's `threads`, the gateway on the
/// first `threads` CPUs and the load on the others; else why not.
pub fn plan(requested: bool, cpus: &[usize], threads: usize) -> Pinning {
    if !requested {
        return Pinning::NotPinned("not pinned (--pin not given)".into());
    }
    if cpus.len() <= threads {
        return Pinning::NotPinned(format!(
            "not pinned: {} CPU{}, the gateway uses {threads}",
            cpus.len(),
            if cpus.len() == 1 { "" } else { "s" }
        ));
    }
    Pinning::Pinned {
        gateway: cpus[..threads].to_vec(),
        load: cpus[threads..].to_vec(),
    }
}

/// Pins every thread of this process to `cpus` (`taskset -a -p -c`).
pub fn pin_self(cpus: &[usize]) -> Result<(), String> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu_list_text(cpus)])
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("taskset: {e} (it comes with util-linux)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The command that starts `bin`, through `taskset -c LIST` when `cpus` is given.
pub fn command(bin: &std::path::Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(list) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(list).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_are_a_count_or_default() {
        assert_eq!(Cores::parse("1"), Some(Cores::Count(1)));
        assert_eq!(Cores::parse("16"), Some(Cores::Count(16)));
        assert_eq!(Cores::parse("default"), Some(Cores::Default));
        for bad in ["0", "-1", "all", "", "1.5"] {
            assert_eq!(Cores::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Cores::Default.pyrogate_flag(), None);
        assert_eq!(Cores::Count(3).pyrogate_flag(), Some(3));
        assert_eq!(Cores::Default.threads(8), 8);
        assert_eq!(Cores::Count(2).threads(8), 2);
        assert_eq!(Cores::Count(1).describe(2), "--cores=1 (nginx: 1 worker)");
        assert_eq!(
            Cores::Default.describe(2),
            "default: every core, 2 (nginx: 2 workers)"
        );
        assert_eq!(Cores::Default.to_string(), "default");
    }

    #[test]
    fn cpu_lists_parse_like_linux_writes_them() {
        assert_eq!(parse_cpu_list("0-1"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0-2,6,8-9\n"), Some(vec![0, 1, 2, 6, 8, 9]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("a"), None);
        let status = "Name:\tloadtest\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n";
        assert_eq!(parse_allowed_cpus(status), Some(vec![0, 1]));
        assert_eq!(cpu_list_text(&[0, 2, 3]), "0,2,3");
        assert!(!allowed_cpus().is_empty());
    }

    #[test]
    fn the_gateway_gets_the_first_cpus_and_the_load_the_rest_when_any_are_left() {
        assert_eq!(
            plan(true, &[0, 1], 1),
            Pinning::Pinned {
                gateway: vec![0],
                load: vec![1]
            }
        );
        assert_eq!(
            plan(true, &[0, 1, 2, 3], 2).describe(),
            "pinned: gateway on CPU 0,1, generator and sinks on CPU 2,3"
        );
        assert_eq!(
            plan(true, &[0, 1, 2, 3], 2).gateway_list().as_deref(),
            Some("0,1")
        );
        let none = plan(true, &[0, 1], 2);
        assert_eq!(none.describe(), "not pinned: 2 CPUs, the gateway uses 2");
        assert_eq!(none.gateway_list(), None);
        assert_eq!(
            plan(false, &[0, 1, 2], 1).describe(),
            "not pinned (--pin not given)"
        );
    }

    #[test]
    fn a_pinned_command_goes_through_taskset() {
        let c = command(std::path::Path::new("/usr/sbin/nginx"), Some("0"));
        assert_eq!(c.get_program(), "taskset");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(args, ["-c", "0", "/usr/sbin/nginx"]);
        assert_eq!(
            command(std::path::Path::new("/bin/x"), None).get_program(),
            "/bin/x"
        );
    }
}
