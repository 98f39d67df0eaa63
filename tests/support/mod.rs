//! The e2e tests' view of the test kit (`testkit/`), under the names the test files use, plus
//! what only pyrogate's own tests need: the io_uring probe and the `both_drivers!` macro.
//!
//! Owns: name mapping only (and [`tls::Upstream`], the kit's stand-in in its recording-upstream
//! configuration under the TLS tests' old name). Does not own a stand-in, a parser or a
//! client: those are the kit's, written independently of the gateway. Each test file includes
//! this module with `mod support;`, and most use only part of it.
#![allow(dead_code, unused_macros, unused_imports)]

pub use testkit::{bodies, client, config, otlp, push, upstream};

pub mod tls;

/// Process control for the `pyrogate` binary, and the io_uring probe for `both_drivers!`.
pub mod gateway {
    pub use testkit::gateway::*;

    /// Whether this kernel (and seccomp profile) lets a process set up io_uring with the
    /// opcodes monoio needs. `/proc/sys/kernel/io_uring_disabled` ≠ 0 disables it system-wide;
    /// Docker's default seccomp profile makes `io_uring_setup` fail, which monoio's probe
    /// detects.
    pub fn uring_available() -> bool {
        if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            && v.trim() != "0"
        {
            return false;
        }
        monoio::utils::detect_uring()
    }
}

pub use gateway::{Driver, Gateway};
pub use testkit::client::{Client, Response};
pub use testkit::http::{header_value, header_values};
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
