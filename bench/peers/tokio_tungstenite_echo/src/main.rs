//! WebSocket echo server on tokio-tungstenite, a peer in `bench/ws_echo.sh`.
//!
//! Single-threaded (tokio current-thread runtime) to match ringtail with one
//! event loop; every path is accepted; text and binary messages are sent
//! back; TCP_NODELAY on, as ringtail does by default.
//!
//! Run: `tokio_tungstenite_echo 127.0.0.1:9002`

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9002".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let listener = TcpListener::bind(&addr).await?;
        println!("listening on ws://{}/", listener.local_addr()?);
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream));
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    })
}

async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    // `next` answers pings and the close handshake by itself.
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            break;
        }
    }
}
