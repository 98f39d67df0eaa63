//! How an upstream host name becomes addresses: the configured `hosts_file` first, then the
//! system resolver (`getaddrinfo`, through std's `ToSocketAddrs`).
//!
//! Owns: [`Resolver`] (blocking: call it only on the blocking pool or the main thread) and the
//! pure `/etc/hosts`-format lookup ([`lookup_hosts`]). Does not own: when names are resolved
//! (start, the periodic refresh and a destination with no address yet, in [`super`] and
//! [`super::sender`]) or what happens when resolution fails (the destination keeps its last
//! good addresses; see [`super::refresh_dns`]). Cold path: once per refresh interval per
//! destination per core.
//!
//! The hosts file (*pyrogate extension*, `pyrogate { hosts_file = "..." }`) is read at every
//! resolution, so an edit takes effect at the next refresh, as glibc's `files` source reads
//! `/etc/hosts` on every lookup. A name it lists resolves to every address listed for it, in
//! file order (glibc's `getaddrinfo` also returns every matching line); a name it does not list
//! goes to the system resolver; a file that cannot be read is a failed resolution.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Longest hosts file read (a hosts file is a few lines; this only bounds a mistake).
pub const MAX_HOSTS_FILE_BYTES: u64 = 1024 * 1024;

/// Resolves upstream host names. Cheap to clone; shared by every core through the transport.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolver {
    hosts_file: Option<PathBuf>,
}

impl Resolver {
    /// A resolver that consults `hosts_file` (when set) before the system resolver.
    pub fn new(hosts_file: Option<PathBuf>) -> Self {
        Resolver { hosts_file }
    }

    /// The configured hosts file.
    pub fn hosts_file(&self) -> Option<&Path> {
        self.hosts_file.as_deref()
    }

    /// Resolves `host:port` (blocking). An IP literal is returned as is.
    pub fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some(path) = &self.hosts_file {
            let text = read_hosts_file(path)?;
            let ips = lookup_hosts(&text, host);
            if !ips.is_empty() {
                return Ok(ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect());
            }
        }
        Ok((host, port).to_socket_addrs()?.collect())
    }

    /// Checks at start that the hosts file can be read, so a wrong path stops the start.
    pub fn check(&self) -> std::io::Result<()> {
        match &self.hosts_file {
            Some(path) => read_hosts_file(path).map(|_| ()),
            None => Ok(()),
        }
    }
}

fn read_hosts_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_HOSTS_FILE_BYTES).read_to_string(&mut text))
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("hosts_file {}: {e}", path.display()))
        })?;
    Ok(text)
}

/// The addresses `text` (`/etc/hosts` format: an address, then names and aliases; `#` starts a
/// comment) lists for `host`, compared case-insensitively, in file order, without duplicates.
/// Lines whose first field is not an IP address are skipped, as glibc skips them. Pure.
pub fn lookup_hosts(text: &str, host: &str) -> Vec<IpAddr> {
    let host = host.trim_end_matches('.');
    let mut out: Vec<IpAddr> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_ascii_whitespace();
        let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if fields.any(|name| name.trim_end_matches('.').eq_ignore_ascii_case(host))
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "# comment\n\
        127.0.0.1\tlocalhost\n\
        10.0.0.1 pyroscope.internal  pyro   # primary\n\
        bogus pyroscope.internal\n\
        ::1 Pyroscope.Internal\n\
        10.0.0.1 pyro\n\
        #10.0.0.9 pyroscope.internal\n";

    #[test]
    fn every_matching_line_in_file_order_case_insensitively() {
        assert_eq!(
            lookup_hosts(HOSTS, "pyroscope.internal"),
            vec![
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(
            lookup_hosts(HOSTS, "PYRO."),
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn unlisted_and_commented_names_are_not_found() {
        assert!(lookup_hosts(HOSTS, "other").is_empty());
        assert!(lookup_hosts(HOSTS, "primary").is_empty());
        assert!(lookup_hosts("", "pyro").is_empty());
    }

    #[test]
    fn the_file_wins_over_the_system_and_a_missing_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "127.0.0.7 localhost\n").unwrap();
        let r = Resolver::new(Some(path.clone()));
        r.check().unwrap();
        assert_eq!(
            r.resolve("localhost", 80).unwrap(),
            vec!["127.0.0.7:80".parse().unwrap()]
        );
        assert_eq!(
            r.resolve("127.0.0.2", 81).unwrap(),
            vec!["127.0.0.2:81".parse().unwrap()]
        );
        std::fs::remove_file(&path).unwrap();
        let e = r.resolve("localhost", 80).unwrap_err();
        assert!(e.to_string().contains("hosts_file"), "{e}");
        assert!(r.check().is_err());
    }
}
