//! WebSocket echo and broadcast server on tokio-tungstenite, a peer in
//! `bench/ws.sh`.
//!
//! Single-threaded (tokio current-thread runtime) to match ringtail with one
//! event loop; TCP_NODELAY on, as ringtail does by default.
//!
//! * `/ws/broadcast`: every connection is subscribed to one
//!   `tokio::sync::broadcast` channel of `Message`s (a binary message holds
//!   `Bytes`, so a clone is a reference count), and every text or binary
//!   message a client sends is delivered to every connected client, the
//!   sender included. Each connection reads and writes in one task (the
//!   stream `split` into sink and stream halves, as in the crate's own
//!   `examples/server.rs` chat); the writer `feed`s every message already in
//!   the channel and then flushes once, so a burst costs one `write`.
//! * any other path: echo — text and binary messages are sent back.
//!
//! Run: `tokio_tungstenite_server 127.0.0.1:9002`

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// Messages the channel keeps for a subscriber that has not sent them yet.
/// The load generator keeps at most its window (default 64) in flight, so a
/// subscriber never falls this far behind; if one did, it would miss
/// messages (reported on stderr, and by the load generator as missing).
const CHANNEL_CAPACITY: usize = 4096;

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9002".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let listener = TcpListener::bind(&addr).await?;
        println!("listening on ws://{}/", listener.local_addr()?);
        let (hub, _) = broadcast::channel::<Message>(CHANNEL_CAPACITY);
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream, hub.clone()));
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    })
}

async fn serve(stream: TcpStream, hub: broadcast::Sender<Message>) {
    let _ = stream.set_nodelay(true);
    // Subscribed during the handshake, before the 101 goes out, so that a
    // client that has its answer misses nothing published after it.
    let mut sub = None;
    // The callback's type (and its large error type) is tungstenite's.
    #[allow(clippy::result_large_err)]
    let route = |req: &Request, resp: Response| {
        if req.uri().path() == "/ws/broadcast" {
            sub = Some(hub.subscribe());
        }
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, route).await else {
        return;
    };
    match sub {
        Some(rx) => broadcast(ws, hub, rx).await,
        None => echo(ws).await,
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn echo(mut ws: Ws) {
    // `next` answers pings and the close handshake by itself.
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            break;
        }
    }
}

async fn broadcast(ws: Ws, hub: broadcast::Sender<Message>, mut rx: broadcast::Receiver<Message>) {
    let (mut sink, mut stream) = ws.split();
    let read = async {
        while let Some(Ok(msg)) = stream.next().await {
            if msg.is_text() || msg.is_binary() {
                // Err only when nobody is subscribed, which cannot be: the
                // sender itself is.
                let _ = hub.send(msg);
            }
        }
    };
    let write = async {
        loop {
            let msg = match rx.recv().await {
                Ok(msg) => msg,
                Err(RecvError::Lagged(n)) => {
                    eprintln!("tokio_tungstenite_server: a subscriber missed {n} messages");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            if sink.feed(msg).await.is_err() {
                return;
            }
            // Everything else already published goes out in the same write.
            loop {
                match rx.try_recv() {
                    Ok(msg) => {
                        if sink.feed(msg).await.is_err() {
                            return;
                        }
                    }
                    Err(TryRecvError::Lagged(n)) => {
                        eprintln!("tokio_tungstenite_server: a subscriber missed {n} messages");
                    }
                    Err(_) => break,
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    };
    // Whichever half ends (client gone, write error) ends the connection.
    tokio::select! {
        () = read => {}
        () = write => {}
    }
}
