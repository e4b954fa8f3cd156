//! `Server::listen_reuseport_exclusive` refuses an address something listens
//! on, while `Server::listen_reuseport` (the shared form) joins it, and
//! `Server::listen_on` adopts a listener without any check.

use std::io::ErrorKind;
use std::net::TcpListener;

use network_server::{Protocol, Server, ServerConfig};

#[test]
fn exclusive_refuses_an_address_in_use_and_shared_joins_it() {
    let mut first = Server::new(ServerConfig::default()).unwrap();
    let l = first
        .listen_reuseport_exclusive("127.0.0.1:0".parse().unwrap(), Protocol::Http)
        .unwrap();
    let addr = first.local_addr(l);
    assert_ne!(addr.port(), 0);
    // Another group (a second process, say) asking for the address alone.
    let mut second = Server::new(ServerConfig::default()).unwrap();
    let e = second
        .listen_reuseport_exclusive(addr, Protocol::Http)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    // The rest of the first group, or a second group that asks to share.
    second.listen_reuseport(addr, Protocol::Http).unwrap();
    // Something listening without SO_REUSEPORT is refused as well.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let e = second
        .listen_reuseport_exclusive(plain.local_addr().unwrap(), Protocol::Http)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    // A listener handed over (as an upgrade would) is adopted as it is.
    let adopted = second.listen_on(plain, Protocol::Http).unwrap();
    assert_ne!(second.local_addr(adopted).port(), 0);
}
