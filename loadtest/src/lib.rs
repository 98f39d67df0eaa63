//! `loadtest`: the benchmark harness for pyrogate — a Pyroscope stand-in sink, a load generator,
//! a replayer of captured uploads, and a side-by-side comparison with the alternatives.
//!
//! Owns: everything a user runs to measure pyrogate, or to load-test their own profiling
//! pipeline with it. Does not own any gateway behaviour: it uses the `pyrogate` library only for
//! wire formats (HTTP/1.1 parsing, the label grammar, the Push codec, the capture format). A tool,
//! not the data path: std threads with blocking sockets, everything on 127.0.0.1, every run
//! bounded in time and count; it stops only processes it started, by PID.
//!
//! Modules: [`bodies`] (SDK-shaped bodies with checksum trailers) with [`sdk_push`] (the
//! Python and .NET SDKs' Push shapes), [`integrity`] (the sink: the
//! test kit's Pyroscope stand-in with loadtest's checksum layer), [`generator`] (schedules, client, integrity check), [`replay`], [`compare`] (systems
//! under test and rounds) with [`placement`] (cores and CPU pinning), [`report`] and [`svg`] (table, JSON, plot), [`soak`] (long run, flaky destination, memory and
//! account) with [`timeplot`], [`outage`] (one destination down under load, with a spool), [`slow`] (slow and greedy clients beside a normal one), [`stats`], [`cli`].

pub mod bodies;
pub mod cli;
pub mod compare;
pub mod generator;
pub mod idle;
pub mod integrity;
pub mod outage;
pub mod placement;
pub mod replay;
pub mod report;
pub mod sdk_push;
pub mod slow;
pub mod soak;
pub mod stats;
pub mod svg;
pub mod timeplot;
