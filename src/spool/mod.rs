//! The durable spool (`pyrogate { spool { ... } }`, *pyrogate extension*): uploads a
//! destination could not take, kept on disk until it can.
//!
//! Owns: the record format ([`record`], pure), one destination's segment files ([`store`],
//! blocking file I/O), where each destination's spool lives (the stable key [`dir_name`]), and
//! opening every configured destination's spool at start and at a reload ([`Spools`]),
//! warning at start about spools of destinations no longer configured. Does not own: deciding
//! when an upload spills or when the spool is replayed, or sending (`upstream::replay`,
//! `fanout`, `upstream::sender`).
//!
//! Spill-over, not write-ahead: a healthy destination's uploads never reach this module.

pub mod record;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, EndpointUrl, Spool};

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

/// The spool directory name of every destination of `config`'s writers, in core destination
/// order (writer order, then endpoint order), as the spool `settings` in force would place
/// them: `None` where the destination does not spool (no `spool` block, `spool = false`, a
/// `file://` capture endpoint). The same URL twice in one writer: the second gets
/// `<name>-2`, and so on.
fn dir_names(config: &Config, settings: Option<&Spool>) -> Vec<Option<String>> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for w in &config.writers {
        for e in &w.endpoints {
            if settings.is_none() || !e.spool || matches!(e.url, EndpointUrl::Capture { .. }) {
                out.push(None);
                continue;
            }
            let mut name = dir_name(&w.label, &e.url_text);
            let mut n = 2;
            while !names.insert(name.clone()) {
                name = format!("{}-{n}", dir_name(&w.label, &e.url_text));
                n += 1;
            }
            out.push(Some(name));
        }
    }
    out
}

/// Opens (and recovers) the spool named `name` of the endpoint `url_text`; `None`, logged,
/// when it cannot be opened (the destination then drops as it would without a spool).
fn open_one(settings: &Spool, name: &str, url_text: &str) -> Option<Arc<Store>> {
    let dir = settings.directory.join(name);
    let _ = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("endpoint.txt"), url_text));
    match Store::open(dir.clone(), settings) {
        Ok((store, rec)) => {
            if rec.truncated_bytes > 0 {
                tracing::warn!(endpoint = %url_text, dir = %dir.display(), bytes = rec.truncated_bytes, files = ?rec.truncated_files, "spool: torn or corrupt tail truncated");
            }
            if rec.records > 0 {
                tracing::info!(endpoint = %url_text, dir = %dir.display(), records = rec.records, bytes = rec.bytes, "spool: records from an earlier run will be replayed");
            }
            Some(Arc::new(store))
        }
        Err(err) => {
            tracing::error!(endpoint = %url_text, dir = %dir.display(), error = %err, "spool unusable: this endpoint drops instead of spooling");
            None
        }
    }
}

fn endpoint_urls(config: &Config) -> impl Iterator<Item = &str> {
    config
        .writers
        .iter()
        .flat_map(|w| w.endpoints.iter().map(|e| e.url_text.as_str()))
}

/// Every spool the process has open, by directory name: one [`Store`] per directory for the
/// life of the process, so a destination a reload adds finds the spool a removed one of the
/// same writer and URL still replays, rather than opening its files a second time.
#[derive(Debug)]
pub struct Spools {
    /// The settings read at start (the `pyrogate` block changes only at a restart).
    settings: Option<Spool>,
    open: HashMap<String, Arc<Store>>,
}

impl Spools {
    /// Opens the spool of every destination of `config` that spools (in core destination
    /// order, `None` where it does not or cannot), and warns about spools of destinations no
    /// longer configured.
    pub fn open_all(config: &Config) -> (Spools, Vec<Option<Arc<Store>>>) {
        let mut spools = Spools {
            settings: config.gateway.spool.clone(),
            open: HashMap::new(),
        };
        let stores = spools.for_config(config);
        if let Some(settings) = &spools.settings {
            let known: HashSet<String> = spools.open.keys().cloned().collect();
            warn_orphans(&settings.directory, &known);
        }
        (spools, stores)
    }

    /// The spool of every destination of `config` (a reloaded configuration), in core
    /// destination order: the one already open under the same directory name, else opened now.
    /// Blocking file I/O: never call it on a core thread.
    pub fn for_config(&mut self, config: &Config) -> Vec<Option<Arc<Store>>> {
        let names = dir_names(config, self.settings.as_ref());
        let Some(settings) = &self.settings else {
            return names.into_iter().map(|_| None).collect();
        };
        names
            .into_iter()
            .zip(endpoint_urls(config))
            .map(|(name, url)| {
                let name = name?;
                if let Some(s) = self.open.get(&name) {
                    return Some(s.clone());
                }
                let store = open_one(settings, &name, url)?;
                self.open.insert(name, store.clone());
                Some(store)
            })
            .collect()
    }
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
