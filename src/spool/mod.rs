//! The durable spool (`pyrogate { spool { ... } }`, *pyrogate extension*): uploads a
//! destination could not take, kept on disk until it can.
//!
//! Owns: the record format ([`record`], pure), one destination's segment files ([`store`],
//! blocking file I/O), where each destination's spool lives (the stable key [`dir_name`]), and
//! opening every configured destination's spool at start ([`open_all`]), warning about spools
//! of destinations no longer configured. Does not own: deciding when an upload spills or when
//! the spool is replayed, or sending (`upstream::replay`, `fanout`, `upstream::sender`).
//!
//! Spill-over, not write-ahead: a healthy destination's uploads never reach this module.

pub mod record;
pub mod store;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, EndpointUrl};

pub use store::{Stats, Store};

/// The wall clock in Unix milliseconds (spooled records carry it: they outlive the process).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The directory name of a destination's spool under `spool.directory`:
/// `<writer label>-<16 hex digits>`, the digits being the FNV-1a 64-bit hash of the endpoint
/// URL as written in the configuration. It depends on nothing else, so it survives restarts,
/// upgrades and reordering of the configuration; the URL is also written to `endpoint.txt`
/// inside for people.
pub fn dir_name(writer: &str, url_text: &str) -> String {
    // FNV-1a, 64-bit (offset basis and prime from the FNV reference).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url_text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{writer}-{h:016x}")
}

/// Opens the spool of every destination that spools, in core destination order (writer
/// order, then endpoint order): `None` where the destination does not spool (no `spool`
/// block, `spool = false`, a `file://` capture endpoint) or its spool cannot be opened (logged;
/// the destination then drops as it would without a spool, and start-up goes on).
pub fn open_all(config: &Config) -> Vec<Option<Arc<Store>>> {
    let Some(settings) = &config.gateway.spool else {
        return config
            .writers
            .iter()
            .flat_map(|w| w.endpoints.iter().map(|_| None))
            .collect();
    };
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for w in &config.writers {
        for e in &w.endpoints {
            if !e.spool || matches!(e.url, EndpointUrl::Capture { .. }) {
                out.push(None);
                continue;
            }
            let mut name = dir_name(&w.label, &e.url_text);
            // The same URL twice in one writer: the second gets its own directory.
            let mut n = 2;
            while !names.insert(name.clone()) {
                name = format!("{}-{n}", dir_name(&w.label, &e.url_text));
                n += 1;
            }
            let dir = settings.directory.join(&name);
            let _ = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join("endpoint.txt"), &e.url_text));
            match Store::open(dir.clone(), settings) {
                Ok((store, rec)) => {
                    if rec.truncated_bytes > 0 {
                        tracing::warn!(endpoint = %e.url_text, dir = %dir.display(), bytes = rec.truncated_bytes, files = ?rec.truncated_files, "spool: torn or corrupt tail truncated");
                    }
                    if rec.records > 0 {
                        tracing::info!(endpoint = %e.url_text, dir = %dir.display(), records = rec.records, bytes = rec.bytes, "spool: records from an earlier run will be replayed");
                    }
                    out.push(Some(Arc::new(store)));
                }
                Err(err) => {
                    tracing::error!(endpoint = %e.url_text, dir = %dir.display(), error = %err, "spool unusable: this endpoint drops instead of spooling");
                    out.push(None);
                }
            }
        }
    }
    warn_orphans(&settings.directory, &names);
    out
}

/// Warns about spool directories no configured destination owns (their files are kept).
fn warn_orphans(root: &std::path::Path, known: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let path: PathBuf = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if !path.is_dir() || known.contains(&name) {
            continue;
        }
        let has_segments = std::fs::read_dir(&path).is_ok_and(|d| {
            d.filter_map(Result::ok)
                .any(|f| f.file_name().to_string_lossy().ends_with(".spool"))
        });
        if has_segments {
            let endpoint = std::fs::read_to_string(path.join("endpoint.txt")).unwrap_or_default();
            tracing::warn!(dir = %path.display(), endpoint = %endpoint, "spool of an endpoint that is no longer configured: its files are kept and not replayed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_key_depends_only_on_writer_and_url() {
        assert_eq!(
            dir_name("backend", "http://pyroscope:4040"),
            dir_name("backend", "http://pyroscope:4040")
        );
        assert_ne!(
            dir_name("backend", "http://pyroscope:4040"),
            dir_name("backend", "http://pyroscope:4041")
        );
        // FNV-1a 64 of the empty string is the offset basis.
        assert_eq!(dir_name("w", ""), "w-cbf29ce484222325");
    }
}
