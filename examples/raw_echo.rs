//! A TCP echo server directly on `event_manager`: multishot accept,
//! multishot receive into the provided-buffer ring, and a write of each
//! received chunk back. Run: `cargo run --example raw_echo -- 127.0.0.1:9000`.

use std::net::TcpListener;
use std::os::fd::OwnedFd;

use event_manager::{Completion, CompletionKind, EventManager};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let listener = TcpListener::bind(&addr)?;
    println!("echoing on {}", listener.local_addr()?);
    let mut em = EventManager::new()?;
    let lst = em.adopt(OwnedFd::from(listener))?;
    em.accept_multishot(lst, 0)?;
    em.run(&mut |em: &mut EventManager, c: Completion| match c.kind {
        CompletionKind::Accept {
            result: Ok(conn), ..
        } => {
            let _ = em.recv_multishot(conn, 0);
        }
        CompletionKind::Recv { pfd, buf } => {
            let _ = em.write(pfd, buf.to_vec(), None, 0);
        }
        CompletionKind::RecvEnd { pfd, .. } => {
            let _ = em.close(pfd, 0);
        }
        _ => {}
    })?;
    Ok(())
}
