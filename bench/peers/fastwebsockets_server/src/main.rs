//! WebSocket echo and broadcast server on fastwebsockets, a peer in
//! `bench/ws.sh`.
//!
//! Echo is written as the crate's own `examples/echo_server.rs` (hyper 1
//! HTTP/1 connection with upgrades, `fastwebsockets::upgrade`,
//! `FragmentCollector`, `tokio::task::unconstrained`, current-thread
//! runtime), plus TCP_NODELAY as ringtail sets by default.
//!
//! * `/ws/broadcast`: every connection is subscribed to one
//!   `tokio::sync::broadcast` channel of `(OpCode, Bytes)`, and every text
//!   or binary message a client sends is delivered to every connected client,
//!   the sender included. The connection is split into read and write halves
//!   as in the crate's `examples/echo_server_split.rs` (`unstable-split`);
//!   the write half sits on a `BufWriter`, and the writer writes every
//!   message already in the channel (the payload borrowed from the shared
//!   `Bytes`, only the 2-byte header built per connection) and then flushes
//!   once, so a burst costs one `write`.
//! * any other path: echo.
//!
//! Run: `fastwebsockets_server 127.0.0.1:9003`

use fastwebsockets::{upgrade, FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload};
use fastwebsockets::{WebSocketError, WebSocketWrite};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::io::{BufWriter, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// Messages the channel keeps for a subscriber that has not written them
/// yet. The load generator keeps at most its window (default 64) in flight,
/// so a subscriber never falls this far behind; if one did, it would miss
/// messages (reported on stderr, and by the load generator as missing).
const CHANNEL_CAPACITY: usize = 4096;

type Hub = broadcast::Sender<(OpCode, Bytes)>;
type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn handle_broadcast(
    fut: upgrade::UpgradeFut,
    hub: Hub,
    mut rx: broadcast::Receiver<(OpCode, Bytes)>,
) -> Result<(), WebSocketError> {
    let ws = fut.await?;
    let (read, mut write) = ws.split(|s| {
        let (r, w) = tokio::io::split(s);
        (r, BufWriter::new(w))
    });
    let mut read = FragmentCollectorRead::new(read);
    let reader = async {
        loop {
            // The load generator sends neither pings nor closes, so there
            // are no obligated writes (as in the crate's split example).
            let frame = read
                .read_frame::<_, WebSocketError>(&mut |_| async { Ok(()) })
                .await?;
            match frame.opcode {
                OpCode::Close => return Ok(()),
                OpCode::Text | OpCode::Binary => {
                    // Err only when nobody is subscribed, which cannot be:
                    // the sender itself is.
                    let _ = hub.send((frame.opcode, Bytes::copy_from_slice(&frame.payload)));
                }
                _ => {}
            }
        }
    };
    let writer = async {
        loop {
            let msg = match rx.recv().await {
                Ok(msg) => msg,
                Err(RecvError::Lagged(n)) => {
                    eprintln!("fastwebsockets_server: a subscriber missed {n} messages");
                    continue;
                }
                Err(RecvError::Closed) => return Ok(()),
            };
            send(&mut write, &msg).await?;
            // Everything else already published goes out in the same write.
            loop {
                match rx.try_recv() {
                    Ok(msg) => send(&mut write, &msg).await?,
                    Err(TryRecvError::Lagged(n)) => {
                        eprintln!("fastwebsockets_server: a subscriber missed {n} messages");
                    }
                    Err(_) => break,
                }
            }
            write.flush().await?;
        }
    };
    // Whichever half ends (client gone, write error) ends the connection.
    tokio::select! {
        r = reader => r,
        r = writer => r,
    }
}

async fn send(
    write: &mut WebSocketWrite<BufWriter<WriteHalf<Upgraded>>>,
    (opcode, payload): &(OpCode, Bytes),
) -> Result<(), WebSocketError> {
    let frame = Frame::new(true, *opcode, None, Payload::Borrowed(payload));
    write.write_frame(frame).await
}

async fn server_upgrade(
    mut req: Request<Incoming>,
    hub: Hub,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let broadcast = req.uri().path() == "/ws/broadcast";
    let (response, fut) = upgrade::upgrade(&mut req)?;
    if broadcast {
        // Subscribed before the 101 goes out, so that a client that has its
        // answer misses nothing published after it.
        let rx = hub.subscribe();
        tokio::task::spawn(async move {
            let _ = tokio::task::unconstrained(handle_broadcast(fut, hub, rx)).await;
        });
    } else {
        tokio::task::spawn(async move {
            let _ = tokio::task::unconstrained(handle_client(fut)).await;
        });
    }
    Ok(response)
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9003".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        println!("listening on ws://{}/", listener.local_addr()?);
        let (hub, _) = broadcast::channel::<(OpCode, Bytes)>(CHANNEL_CAPACITY);
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let hub = hub.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let conn = http1::Builder::new()
                    .serve_connection(io, service_fn(|req| server_upgrade(req, hub.clone())))
                    .with_upgrades();
                let _ = conn.await;
            });
        }
    })
}
