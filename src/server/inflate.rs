//! Inflating a gzip'd request body within the in-flight budget, for the handlers that must
//! (Connect Push, OTLP/HTTP).
//!
//! Owns: charging the inflated copy to the request's budget reservation (the size the gzip
//! trailer announces before inflating, any excess of a multi-member body once it is known) and
//! counting a refusal. Does not own: the gzip rules ([`crate::push::gunzip_bounded`]) or how a
//! failure is answered (each handler speaks its own protocol's errors).

use std::time::Instant;

use bytes::Bytes;

use super::ReceiverRt;
use crate::budget::Reservation;
use crate::metrics::RefuseReason;
use crate::push::{self, GzipError};

/// Why a body was not inflated.
#[derive(Debug)]
pub enum InflateError {
    /// The in-flight budget had no room for the inflated copy before the deadline (counted as
    /// a `budget` refusal).
    Budget,
    /// Not gzip, corrupt, or larger than the limit once inflated.
    Gzip(GzipError),
}

/// Inflates `body` (at most `max` bytes out), growing `reservation` by what the copy holds.
pub async fn inflate_charged(
    rx: &ReceiverRt,
    body: &[u8],
    max: u64,
    reservation: Option<&Reservation>,
    wait_until: Instant,
) -> Result<Bytes, InflateError> {
    let grow = |more: u64| async move {
        match reservation {
            Some(r) if more > 0 && !r.grow_until(more, wait_until).await => {
                rx.metrics.record_refused(RefuseReason::Budget);
                Err(InflateError::Budget)
            }
            _ => Ok(()),
        }
    };
    let announced = push::inflated_size_hint(body, max).unwrap_or(0);
    grow(announced).await?;
    let inflated = push::gunzip_bounded(body, max).map_err(InflateError::Gzip)?;
    grow((inflated.len() as u64).saturating_sub(announced)).await?;
    Ok(inflated)
}
