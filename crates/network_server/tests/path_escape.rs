//! No request path leaves the served root: 30 shapes of escape attempt
//! (dot segments plain and percent-encoded, encoded slashes, NUL, absolute
//! and double-slash paths, backslashes, symlinks pointing outside by
//! relative and absolute target, a magic link, symlink loops, overlong
//! paths), each answered 403 or 404 and never with the secret's bytes.
//! Sent over a raw socket: curl would normalise most of them away.

mod common;
mod send_file_support;

use std::os::unix::fs::symlink;

use network_server::{FileRootOptions, ServerConfig, UploadOptions};
use send_file_support::spawn_files;

const SECRET: &str = "TOP-SECRET-CONTENT";

#[test]
fn thirty_escape_shapes_get_403_or_404() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    let root = top.join("www");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(top.join("outside")).unwrap();
    std::fs::write(top.join("secret.txt"), SECRET).unwrap();
    std::fs::write(top.join("outside/secret.txt"), SECRET).unwrap();
    std::fs::write(root.join("public.txt"), "public").unwrap();
    std::fs::write(root.join("sub/deeper/x.txt"), "x").unwrap();
    // Symlinks: inside (allowed), outside relative, outside absolute, to a
    // directory outside, magic link, loops, through a parent link.
    symlink("public.txt", root.join("inside")).unwrap();
    symlink("../secret.txt", root.join("out_rel")).unwrap();
    symlink(top.join("secret.txt"), root.join("out_abs")).unwrap();
    symlink("../outside", root.join("out_dir")).unwrap();
    symlink("/proc/self/root/etc/passwd", root.join("magic")).unwrap();
    symlink("/proc/self/cwd", root.join("cwd")).unwrap();
    symlink("loop_b", root.join("loop_a")).unwrap();
    symlink("loop_a", root.join("loop_b")).unwrap();
    symlink("self_loop", root.join("self_loop")).unwrap();
    symlink("../../secret.txt", root.join("sub/up2")).unwrap();
    symlink("/", root.join("slash")).unwrap();
    let up = top.join("up");
    std::fs::create_dir_all(&up).unwrap();
    let fs = spawn_files(
        ServerConfig::default(),
        root.clone(),
        FileRootOptions::default(),
        up,
        UploadOptions::default(),
    );

    // Sanity: the legitimate paths work, including a symlink inside.
    for (path, body) in [
        ("/public.txt", "public"),
        ("/inside", "public"),
        ("/sub/deeper/x.txt", "x"),
    ] {
        let r = get(&fs, path);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, body.as_bytes()),
            "{path}"
        );
    }

    let long_segments = format!("/{}", "a/".repeat(2500));
    let long_name = format!("/{}", "b".repeat(300));
    let abs_target = format!("{}/secret.txt", top.display());
    let shapes: Vec<(&str, String)> = vec![
        ("dot-dot", "/../secret.txt".into()),
        ("dot-dot twice", "/../../secret.txt".into()),
        ("encoded dots", "/%2e%2e/secret.txt".into()),
        ("encoded dots upper", "/%2E%2E/secret.txt".into()),
        ("encoded dots and slash", "/%2e%2e%2fsecret.txt".into()),
        ("half-encoded dot", "/.%2e/secret.txt".into()),
        ("encoded slash", "/..%2fsecret.txt".into()),
        ("sub then up", "/sub/../../secret.txt".into()),
        (
            "encoded sub then up",
            "/sub/%2e%2e/%2e%2e/secret.txt".into(),
        ),
        ("dot segments", "/./.././secret.txt".into()),
        ("trailing dot-dot", "/sub/..".into()),
        ("double slash absolute", "//etc/passwd".into()),
        ("absolute path", "/etc/passwd".into()),
        ("absolute to secret", abs_target.clone()),
        ("backslashes", "/..\\secret.txt".into()),
        ("encoded backslashes", "/%5c..%5csecret.txt".into()),
        ("double-encoded dots", "/%252e%252e/secret.txt".into()),
        ("NUL", "/public.txt%00.html".into()),
        ("NUL alone", "/%00".into()),
        ("symlink outside (relative)", "/out_rel".into()),
        ("symlink outside (absolute)", "/out_abs".into()),
        ("symlinked dir outside", "/out_dir/secret.txt".into()),
        ("symlink two levels up", "/sub/up2".into()),
        ("symlink to /", "/slash/etc/passwd".into()),
        ("magic link", "/magic".into()),
        ("proc cwd link", "/cwd/secret.txt".into()),
        ("symlink loop", "/loop_a".into()),
        ("self loop", "/self_loop".into()),
        ("very long path", long_segments),
        ("very long name", long_name),
        ("proc through root", "/proc/self/root/etc/passwd".into()),
    ];
    assert!(shapes.len() >= 30);
    for (what, path) in &shapes {
        let r = get(&fs, path);
        assert!(
            r.status == 403 || r.status == 404,
            "{what} ({path}): status {}",
            r.status
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains(SECRET) && !body.contains("root:"),
            "{what}: leaked"
        );
    }
    // An absolute-form request target with an escaping path.
    let r = common::request(
        fs.server.addr,
        b"GET http://localhost/../secret.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(
        r.status == 403 || r.status == 404 || r.status == 400,
        "{}",
        r.status
    );
    assert!(!String::from_utf8_lossy(&r.body).contains(SECRET));
    // Malformed percent-encoding is a bad request.
    assert_eq!(get(&fs, "/%zz").status, 400);
    let seen = fs.seen.lock().unwrap();
    assert_eq!(seen.done_err, 0);
}

fn get(fs: &send_file_support::FileServer, path: &str) -> common::Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    common::request(fs.server.addr, req.as_bytes()).expect("a response")
}
