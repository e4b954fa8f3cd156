//! The listener table: each listening socket of a server (its pfd, its
//! protocol, its address), the public [`ListenerId`] and [`Protocol`], and
//! the socket helpers for binding listeners and for the connections they
//! accept.

use std::net::{SocketAddr, TcpListener};

use event_manager::Pfd;

/// A listening socket of this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub(crate) u32);

/// What a listener's connections speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (WebSocket after an Upgrade).
    Http,
    /// Raw bytes: the application reads and writes itself.
    Raw,
    /// HTTP/1.1 (and WebSocket) over TLS, with the server's
    /// [`ServerConfig::tls`](crate::ServerConfig::tls) settings (listening
    /// fails without them).
    Https,
}

/// One listening socket.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) pfd: Pfd,
    pub(crate) protocol: Protocol,
    pub(crate) addr: SocketAddr,
}

/// The listeners of one server, indexed by [`ListenerId`] (ids are never
/// reused; a stopped listener keeps its entry).
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    list: Vec<Listener>,
}

impl Listeners {
    /// The id the next [`Listeners::push`] returns.
    pub(crate) fn next_id(&self) -> ListenerId {
        ListenerId(self.list.len() as u32)
    }

    /// Adds a listener; its id is [`Listeners::next_id`] of before.
    pub(crate) fn push(&mut self, l: Listener) -> ListenerId {
        let id = self.next_id();
        self.list.push(l);
        id
    }

    /// The listener `id` (panics for an id this server never returned).
    pub(crate) fn get(&self, id: ListenerId) -> &Listener {
        &self.list[id.0 as usize]
    }

    /// Every listener, stopped ones included.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Listener> {
        self.list.iter()
    }
}

/// A listening TCP socket: `SO_REUSEADDR`, optionally `SO_REUSEPORT`,
/// close-on-exec, backlog 4096 (the kernel caps it at `somaxconn`).
pub(crate) fn bind_listener(addr: SocketAddr, reuseport: bool) -> std::io::Result<TcpListener> {
    let socket = bind_socket(addr, reuseport)?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// A bound, not yet listening TCP socket: `SO_REUSEADDR`, optionally
/// `SO_REUSEPORT`, close-on-exec.
pub(crate) fn bind_socket(addr: SocketAddr, reuseport: bool) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?;
    socket.set_reuse_address(true)?;
    if reuseport {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// The peer address of a connected socket (for the access log).
pub(crate) fn peer_addr(fd: std::os::fd::RawFd) -> Option<SocketAddr> {
    socket_addr(fd, true).ok().flatten()
}

/// The peer (`peer`) or local address of a socket: `Ok(None)` for a socket
/// that is not IPv4/IPv6 (a Unix socket, say); `Err` with the errno of
/// `getpeername`/`getsockname` (`ENOTCONN`, `ENOTSOCK`, …).
pub(crate) fn socket_addr(
    fd: std::os::fd::RawFd,
    peer: bool,
) -> std::io::Result<Option<SocketAddr>> {
    // SAFETY: `fd` is a live descriptor owned by the event manager for the
    // duration of this call; the borrow does not outlive it.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let sock = socket2::SockRef::from(&fd);
    let addr = if peer {
        sock.peer_addr()?
    } else {
        sock.local_addr()?
    };
    Ok(addr.as_socket())
}

/// `TCP_NODELAY`: the server batches its own writes (one `writev` per
/// connection and turn), so the kernel must not hold small segments back.
pub(crate) fn set_nodelay(fd: std::os::fd::RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `fd` is a live socket owned by the event manager; the option
    // value is a valid c_int for the duration of the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
