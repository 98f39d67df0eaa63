//! Shared harness for pyrogate's black-box end-to-end tests.
//!
//! Owns: the in-process Pyroscope stand-in ([`upstream`]), the gateway process driver
//! ([`gateway`]), a raw-bytes HTTP/1.1 client ([`client`]), realistic SDK upload bodies
//! ([`bodies`]) and an independent codec and SDK shapes for the Connect Push API ([`push`]). Does not own any gateway code: everything here talks to the `pyrogate` binary
//! over sockets, signals and its stderr, as the README ("Command line") describes. Test code, so
//! plain std threads and blocking
//! sockets; every blocking call has a timeout so that no test can hang.
//!
//! Each test file includes this module with `mod support;`, and most use only part of it.
#![allow(dead_code, unused_macros, unused_imports)]

pub mod bodies;
pub mod client;
pub mod config;
pub mod gateway;
pub mod push;
pub mod tls;
pub mod upstream;

pub use client::{Client, Response};

/// The first value of header `name` (case-insensitive) among `(name, value)` pairs.
pub fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    header_values(headers, name).into_iter().next()
}

/// Every value of header `name` (case-insensitive), in order.
pub fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}
pub use gateway::{Driver, Gateway};
pub use upstream::{Action, MockPyroscope, Recorded};

/// Generates one `#[test]` per driver for a scenario written as `fn(Driver)`:
/// `both_drivers!(fan_out_bodies);` produces `fan_out_bodies::uring` and
/// `fan_out_bodies::legacy`. The uring variant is skipped (with a printed line) when the
/// kernel or a seccomp profile does not allow io_uring.
macro_rules! both_drivers {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[test]
                fn uring() {
                    if !$crate::support::gateway::uring_available() {
                        println!("skipped: io_uring unavailable");
                        return;
                    }
                    super::$scenario($crate::support::Driver::Uring);
                }

                #[test]
                fn legacy() {
                    super::$scenario($crate::support::Driver::Legacy);
                }
            }
        )*
    };
}
pub(crate) use both_drivers;
