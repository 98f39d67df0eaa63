//! `loadtest`: the benchmark harness for pyrogate (sink, generator, replay, compare).
//!
//! Only the entry point exists so far; until the subcommands land, the reproducible throughput
//! check is `loadtest/scripts/wrk-fanout.sh` (see tuning.md).

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "loadtest: the sink, gen, replay and compare subcommands are not built yet; \
         run loadtest/scripts/wrk-fanout.sh for the current throughput check (see tuning.md)"
    );
    ExitCode::from(2)
}
