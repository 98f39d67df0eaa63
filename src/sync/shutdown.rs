//! The per-core shutdown signal.
//!
//! Owns: [`Shutdown`], a flag that is set once and wakes every task waiting for it (accept
//! loops, DNS refreshers, the core's main task). Does not own: what shutting down means — the
//! drain and its deadline belong to `worker`, refusing new requests to `server`. Cold path.

use std::cell::Cell;
use std::time::Duration;

use super::Notify;

/// Per-core shutdown signal.
#[derive(Debug, Default)]
pub struct Shutdown {
    triggered: Cell<bool>,
    notify: Notify,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.triggered.set(true);
        self.notify.notify_all();
    }

    pub fn is_triggered(&self) -> bool {
        self.triggered.get()
    }

    /// Completes once shutdown has been triggered.
    pub async fn wait(&self) {
        while !self.triggered.get() {
            self.notify.notified().await;
        }
    }

    /// Sleeps for `d`; returns `true` early if shutdown is triggered meanwhile.
    pub async fn wait_timeout(&self, d: Duration) -> bool {
        monoio::time::timeout(d, self.wait()).await.is_ok()
    }
}
