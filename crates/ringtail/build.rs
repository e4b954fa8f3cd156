//! Puts the git revision into `ringtail --version`: `RINGTAIL_GIT_REV` is
//! `git rev-parse --short HEAD` of the checkout being built, or "unknown"
//! where there is none (a build from a source tarball, or no `git`).
//! Packagers can set `RINGTAIL_GIT_REV` themselves.

use std::path::Path;
use std::process::Command;

/// `git ARGS` in this crate's directory: its trimmed output, if it ran and
/// succeeded.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// Rebuild when `path` changes (only for files that exist: cargo reruns a
/// script on every build for a path that does not).
fn watch(path: &str) {
    if Path::new(path).exists() {
        println!("cargo:rerun-if-changed={path}");
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RINGTAIL_GIT_REV");
    let rev = match std::env::var("RINGTAIL_GIT_REV") {
        Ok(rev) if !rev.is_empty() => rev,
        _ => git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=RINGTAIL_GIT_REV={rev}");
    // HEAD (per worktree), the branch it points to, and packed-refs (where
    // the branch lives once packed): a commit or checkout changes one.
    let mut paths = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        paths.push(branch);
    }
    let mut args = vec!["rev-parse", "--path-format=absolute"];
    for p in &paths {
        args.extend(["--git-path", p.as_str()]);
    }
    if let Some(resolved) = git(&args) {
        resolved.lines().for_each(watch);
    }
}
