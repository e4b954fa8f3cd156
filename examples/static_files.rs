//! A static file server on `Ctx::http_send_file`: every GET/HEAD is served
//! from ROOT (ranges, `ETag`/`Last-Modified`, 304/412/416, directory
//! index, file cache); `POST /upload` with a `multipart/form-data` body is
//! streamed to UPLOAD_DIR (default: none, uploads answered 404).
//!
//! Run: `cargo run --release --example static_files -- ROOT [ADDR] [UPLOAD_DIR]`
//! (ADDR defaults to `127.0.0.1:8080`; `CACHE_MAX_FILE=bytes` sets the
//! largest cached file, default 256 KiB; `SPLICE=0` reads file bodies
//! instead of splicing them, `SPLICE_LINK=1` links each splice pair,
//! `SPLICE_PIPE=bytes` sets the pipe size).

use std::path::PathBuf;

use network_server::{
    Application, ClientId, Ctx, FileEvent, FileRootId, FileRootOptions, HttpEvent, Protocol,
    Server, ServerConfig, UploadData, UploadDirId, UploadEvent, UploadOptions,
};

struct Static {
    root: FileRootId,
    uploads: Option<UploadDirId>,
}

impl Application for Static {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, event: HttpEvent<'_>) {
        match event {
            HttpEvent::Request(req) if req.method == "POST" && req.path == "/upload" => {
                match self.uploads {
                    Some(dir) => {
                        let _ = ctx.http_upload_begin(client, req, dir, UploadOptions::default());
                    }
                    None => {
                        let _ = ctx.http_respond(client, 404, &[], "uploads are off\n");
                    }
                }
            }
            HttpEvent::Request(req) => {
                // One completion comes back in on_http_write; nothing to do.
                let _ = ctx.http_send_file(client, self.root, req.path, req);
            }
            HttpEvent::Body(chunk) if ctx.http_upload_active(client) => {
                let _ = ctx.http_upload_feed(client, chunk);
            }
            HttpEvent::BodyEnd if ctx.http_upload_active(client) => {
                let _ = ctx.http_upload_end(client);
            }
            HttpEvent::Body(_) | HttpEvent::BodyEnd => {}
        }
    }

    fn on_file(&mut self, ctx: &mut Ctx<'_>, event: FileEvent) {
        let FileEvent::Upload { client, event } = event else {
            return;
        };
        match event {
            UploadEvent::Done(parts) => {
                let mut body = String::new();
                for p in parts {
                    match p.data {
                        UploadData::File { path, size } => body.push_str(&format!(
                            "{}: {size} bytes -> {}\n",
                            p.name,
                            path.display()
                        )),
                        UploadData::Field(v) => body.push_str(&format!(
                            "{} = {}\n",
                            p.name,
                            String::from_utf8_lossy(&v)
                        )),
                    }
                }
                let _ = ctx.http_respond(client, 201, &[("Content-Type", "text/plain")], body);
            }
            // The server has answered (413/400/…) and closes the connection.
            UploadEvent::Failed { status, reason } => eprintln!("upload failed: {status} {reason}"),
            _ => {}
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .ok_or("usage: static_files ROOT [ADDR] [UPLOAD_DIR]")?,
    );
    let addr = args.next().unwrap_or("127.0.0.1:8080".into());
    let upload_dir = args.next().map(PathBuf::from);
    let mut config = ServerConfig::default();
    // Largest file kept in the file cache (default 256 KiB).
    if let Ok(v) = std::env::var("CACHE_MAX_FILE") {
        config.files.cache_max_file = v.parse()?;
    }
    // SPLICE=0: read file bodies into buffers instead of splicing them
    // (FileConfig::splice); SPLICE_LINK=1 links each pipe's fill and drain;
    // SPLICE_PIPE=bytes sets the pipe size.
    if let Ok(v) = std::env::var("SPLICE") {
        config.files.splice = v != "0";
    }
    if let Ok(v) = std::env::var("SPLICE_LINK") {
        config.files.splice_link = v == "1";
    }
    if let Ok(v) = std::env::var("SPLICE_PIPE") {
        config.files.splice_pipe_size = v.parse()?;
    }
    let mut server = Server::new(config)?;
    let listener = server.listen(addr.parse()?, Protocol::Http)?;
    let mut ctx = server.ctx();
    let root = ctx.file_root_open(&root, FileRootOptions::default())?;
    let uploads = match upload_dir {
        Some(d) => Some(ctx.upload_dir_open(&d)?),
        None => None,
    };
    println!("serving on http://{}", server.local_addr(listener));
    server.run(&mut Static { root, uploads })?;
    Ok(())
}
