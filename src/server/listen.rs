//! Binding receiver sockets: one SO_REUSEPORT listener per receiver per core.
//!
//! Owns: creating the listening sockets (blocking; called on the main thread at start and on
//! the reload thread, never on a core thread), the probe that refuses an address another
//! process already listens on, and resolving port 0 once so every core shares one port.
//! Does not own: accepting ([`super::accept_loop`]) or deciding which receivers need new
//! sockets on a reload (`reload`).

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Listen backlog per core socket.
pub const LISTEN_BACKLOG: i32 = 4096;

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    s.listen(LISTEN_BACKLOG)?;
    Ok(s.into())
}

/// Fails when another process already listens on `addr`. SO_REUSEPORT would otherwise let a
/// second gateway (or anything else of the same user) share the port silently and take part of
/// the traffic; a probe bound without SO_REUSEPORT gets EADDRINUSE in that case.
fn ensure_port_free(addr: SocketAddr) -> std::io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())
}

/// Binds `cores` SO_REUSEPORT sockets on `addr` (port 0: one port chosen by the kernel, shared
/// by all of them); returns them and the bound address. `probe` first checks that nobody else
/// listens there: a reload that rebinds an address this process still listens on skips it.
pub fn bind(
    addr: SocketAddr,
    cores: usize,
    probe: bool,
) -> std::io::Result<(Vec<TcpListener>, SocketAddr)> {
    if probe {
        ensure_port_free(addr)?;
    }
    let mut addr = addr;
    let mut out = Vec::with_capacity(cores);
    for _ in 0..cores.max(1) {
        let l = reuseport_listener(addr)?;
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok((out, addr))
}
