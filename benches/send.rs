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
//! Run: `cargo bench --bench send`. Not a criterion bench: CPU time, not wall time, is the
//! figure, read once over many sends.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

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

fn measure(size: usize, sends: usize) {
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
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let body = vec![0x5au8; size];
    for _ in 0..sends / 10 {
        s.write_all(&body).expect("warm-up send");
    }
    let (u0, k0) = thread_cpu();
    let start = Instant::now();
    for _ in 0..sends {
        s.write_all(&body).expect("send");
    }
    let wall = start.elapsed().as_secs_f64();
    let (u1, k1) = thread_cpu();
    drop(s);
    let received = reader.join().expect("reader");
    assert_eq!(received, size * (sends + sends / 10), "every byte read");
    let per = |secs: f64| secs / sends as f64 * 1e6;
    println!(
        "{:>7} KiB x {sends:>6}: {:>6.1} µs CPU per send (user {:>5.1}, kernel {:>6.1}); {:>6.1} µs wall",
        size / 1024,
        per((u1 - u0) + (k1 - k0)),
        per(u1 - u0),
        per(k1 - k0),
        per(wall),
    );
}

fn main() {
    println!("one write_all of an upload body to a loopback TCP connection, sender's CPU only");
    measure(16 * 1024, 40_000);
    measure(200 * 1024, 5_000);
}
