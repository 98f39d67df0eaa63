//! Running a command-line program to its end within a time bound, for the CLI tests.
//!
//! Owns: [`run_bounded`] (stdin closed, stdout and stderr read on their own threads so a full
//! pipe never blocks the child, killed and a panic past the bound). Does not own what the
//! program is or what the tests expect of it. Test code.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished program printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `command` to its end; kills it and panics (naming `what`) if it runs longer than
/// `bound`. Its output must be UTF-8.
pub fn run_bounded(command: &mut Command, bound: Duration, what: &str) -> Finished {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = pipe.read_to_end(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().expect("stdout pipe")));
    let err = read(Box::new(child.stderr.take().expect("stderr pipe")));
    let deadline = Instant::now() + bound;
    let status = loop {
        match child.try_wait().expect("wait for the child") {
            Some(status) => break status,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} still running after {bound:?}");
            }
        }
    };
    let text = |r: std::thread::JoinHandle<Vec<u8>>| {
        String::from_utf8(r.join().expect("pipe reader")).expect("UTF-8 output")
    };
    Finished {
        status,
        stdout: text(out),
        stderr: text(err),
    }
}
