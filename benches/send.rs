//! The floor under fan-out: the CPU one `send` of an upload body costs on this machine's
//! loopback, to set beside the marginal CPU of one more destination that `loadtest compare
//! --fanouts 1,8` reports (tuning.md, "What one more destination costs").
//!
//! A plain blocking TCP connection on 127.0.0.1 with `TCP_NODELAY`, a reader thread draining
//! it; the sending thread writes the same body N times with `write_all` and its CPU time (user
//! and kernel, from `/proc/thread-self/stat`) is divided by N. The reader's CPU is not counted:
//! on a real network the receiving side is another machine's, and pyrogate's receive of the
//! body is paid once whatever the fan-out. Bodies: 16 KiB (a Go SDK upload) and 200 KiB (a
//! Java agent's JFR upload).
//!
//! The same sends are also made through io_uring, one in flight at a time as a sender does:
//! `IORING_OP_SEND`; `IORING_OP_SEND` on a registered file, which skips the file-table lookup
//! (`fget`) each operation makes; and `IORING_OP_SEND_ZC` (Linux 6.0+: the body's pages are
//! handed to the NIC instead of copied, and a second completion says when the buffer may be
//! reused). The socket is non-blocking there, so a full send buffer makes io_uring wait on
//! readiness inside the sending thread rather than in an `iou-wrk` worker whose CPU this would
//! miss (the bench says if a worker was started). On loopback the receiving socket gets a copy
//! of zero-copy pages anyway (`skb_orphan_frags_rx` in the kernel's receive path), so the
//! `SEND_ZC` line is what it costs where it cannot save the copy, as in pyrogate's loopback
//! benchmarks; over a real NIC it saves the copy (`_copy_from_iter`'s share of a send).
//!
//! Run: `cargo bench --bench send`. Not a criterion bench: CPU time, not wall time, is the
//! figure, read once over many sends.
// io_uring submissions hand the kernel raw buffer pointers; each `unsafe` block says why the
// buffer outlives the operation.
#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use std::time::Instant;

use io_uring::{IoUring, cqueue, opcode, types};

/// `IORING_CQE_F_NOTIF` (include/uapi/linux/io_uring.h): the completion that says a
/// zero-copy send's buffer is free again.
const CQE_F_NOTIF: u32 = 8;

/// `/proc` reports times in clock ticks of `USER_HZ`, 100 per second on Linux (a fixed ABI
/// value, `sysconf(_SC_CLK_TCK)`).
const USER_HZ: f64 = 100.0;

/// The calling thread's user and kernel CPU time so far, in seconds.
fn thread_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
    // Fields after the command name (which may hold spaces) start at its closing parenthesis;
    // utime and stime are fields 14 and 15 (proc(5)).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields[i - 3].parse::<f64>().expect("ticks") / USER_HZ;
    (ticks(14), ticks(15))
}

/// How the body is sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    /// Blocking `write_all`.
    Write,
    /// `IORING_OP_SEND`, waited for.
    UringSend,
    /// `IORING_OP_SEND` on a registered file (no file-table lookup per operation).
    UringSendFixed,
    /// `IORING_OP_SEND_ZC`, waited for until its buffer is released.
    UringSendZc,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Write => "write_all",
            Method::UringSend => "io_uring SEND",
            Method::UringSendFixed => "io_uring SEND fixed",
            Method::UringSendZc => "io_uring SEND_ZC",
        }
    }
}

/// A loopback connection whose far end a thread drains; the thread returns the bytes read.
fn connection() -> (TcpStream, JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0usize;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    });
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    (s, reader)
}

/// The socket as an io_uring operation names it: a descriptor, or an index into the ring's
/// registered files.
#[derive(Clone, Copy)]
enum Target {
    Fd(types::Fd),
    Fixed(types::Fixed),
}

impl From<types::Fd> for Target {
    fn from(fd: types::Fd) -> Self {
        Target::Fd(fd)
    }
}

impl From<types::Fixed> for Target {
    fn from(fd: types::Fixed) -> Self {
        Target::Fixed(fd)
    }
}

/// Sends all of `body` through `ring`, one operation in flight, and waits until the kernel
/// is done with the buffer.
fn uring_send(ring: &mut IoUring, fd: impl Into<Target>, body: &[u8], zero_copy: bool) {
    let fd = fd.into();
    let mut sent = 0;
    while sent < body.len() {
        let rest = body.get(sent..).expect("in bounds");
        let len = u32::try_from(rest.len()).expect("body under 4 GiB");
        let entry = match (fd, zero_copy) {
            (Target::Fd(fd), true) => opcode::SendZc::new(fd, rest.as_ptr(), len).build(),
            (Target::Fd(fd), false) => opcode::Send::new(fd, rest.as_ptr(), len).build(),
            (Target::Fixed(fd), true) => opcode::SendZc::new(fd, rest.as_ptr(), len).build(),
            (Target::Fixed(fd), false) => opcode::Send::new(fd, rest.as_ptr(), len).build(),
        };
        // SAFETY: `rest` borrows `body`, which the caller keeps alive and unchanged until this
        // function returns, and it returns only after the send's completion (and, for
        // SEND_ZC, the notification that the kernel released the pages) has been reaped.
        unsafe { ring.submission().push(&entry) }.expect("submission queue has room");
        let mut result = None;
        let mut waiting_for_notification = false;
        while result.is_none() || waiting_for_notification {
            ring.submit_and_wait(1).expect("io_uring_enter");
            for cqe in ring.completion() {
                if cqe.flags() & CQE_F_NOTIF != 0 {
                    waiting_for_notification = false;
                } else {
                    waiting_for_notification = cqueue::more(cqe.flags());
                    result = Some(cqe.result());
                }
            }
        }
        match result {
            Some(n) if n > 0 => sent += n as usize,
            other => panic!("send failed: {other:?}"),
        }
    }
}

/// `iou-wrk` threads of this process (io_uring's workers for operations that would block).
fn uring_workers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with("iou-wrk"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn measure(method: Method, size: usize, sends: usize) {
    let (mut s, reader) = connection();
    let body = vec![0x5au8; size];
    let mut ring = IoUring::new(8).expect("io_uring");
    if method != Method::Write {
        s.set_nonblocking(true).expect("non-blocking");
    }
    let fd = types::Fd(s.as_raw_fd());
    if method == Method::UringSendFixed {
        ring.submitter()
            .register_files(&[s.as_raw_fd()])
            .expect("register the socket");
    }
    let mut send = |s: &mut TcpStream| match method {
        Method::Write => s.write_all(&body).expect("send"),
        Method::UringSend => uring_send(&mut ring, fd, &body, false),
        Method::UringSendFixed => uring_send(&mut ring, types::Fixed(0), &body, false),
        Method::UringSendZc => uring_send(&mut ring, fd, &body, true),
    };
    for _ in 0..sends / 10 {
        send(&mut s);
    }
    let (u0, k0) = thread_cpu();
    let start = Instant::now();
    for _ in 0..sends {
        send(&mut s);
    }
    let wall = start.elapsed().as_secs_f64();
    let (u1, k1) = thread_cpu();
    let workers = uring_workers();
    // A registered file holds the socket open: the ring goes first, so the reader sees EOF.
    drop(ring);
    drop(s);
    let received = reader.join().expect("reader");
    assert_eq!(received, size * (sends + sends / 10), "every byte read");
    let per = |secs: f64| secs / sends as f64 * 1e6;
    println!(
        "{:<19} {:>4} KiB x {sends:>6}: {:>6.1} µs CPU per send (user {:>5.1}, kernel {:>6.1}); {:>6.1} µs wall{}",
        method.name(),
        size / 1024,
        per((u1 - u0) + (k1 - k0)),
        per(u1 - u0),
        per(k1 - k0),
        per(wall),
        if workers > 0 {
            format!(" ({workers} io_uring workers: their CPU is not counted)")
        } else {
            String::new()
        },
    );
}

fn main() {
    println!(
        "one send of an upload body to a loopback TCP connection, four ways; the sender's CPU only"
    );
    for (size, sends) in [(16 * 1024, 40_000), (200 * 1024, 5_000)] {
        for method in [
            Method::Write,
            Method::UringSend,
            Method::UringSendFixed,
            Method::UringSendZc,
        ] {
            measure(method, size, sends);
        }
    }
}
