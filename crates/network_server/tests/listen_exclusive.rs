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

#[test]
fn listening_on_an_address_in_use_names_it_and_keeps_the_kind() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut server = Server::new(ServerConfig::default()).unwrap();
    let errors = [
        server.listen(addr, Protocol::Http).unwrap_err(),
        server.listen_reuseport(addr, Protocol::Raw).unwrap_err(),
        server
            .listen_reuseport_exclusive(addr, Protocol::Http)
            .unwrap_err(),
    ];
    for e in errors {
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("cannot listen on {addr}: ")),
            "{msg}"
        );
        assert!(msg.contains("in use"), "{msg}");
    }
    // Another failure names its address the same way: 192.0.2.1
    // (TEST-NET-1) is no address of this machine (unless it allows binding
    // to foreign addresses, `ip_nonlocal_bind`).
    let Err(e) = server.listen("192.0.2.1:0".parse().unwrap(), Protocol::Http) else {
        eprintln!("this machine binds non-local addresses: skipped");
        return;
    };
    assert_eq!(e.kind(), ErrorKind::AddrNotAvailable, "{e}");
    assert!(
        e.to_string().starts_with("cannot listen on 192.0.2.1:0: "),
        "{e}"
    );
}
