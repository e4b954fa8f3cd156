//! The test command's scripts put what they write under `CARGO_TARGET_DIR`
//! when it is set (a relative one read from where the script was started,
//! as cargo reads it): `fuzz/run.sh` its builds and new inputs, and
//! `scripts/install-test-deps` the virtualenv. Checked with stand-ins for
//! `cargo` and for the virtualenv's Python that record how they were
//! called, so nothing is built or installed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn fuzz_builds_go_under_a_relative_cargo_target_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("cargo.log");
    // `cargo fuzz --version` succeeds, `cargo fuzz list` names one target,
    // `cargo fuzz run …` is recorded.
    script(
        &tmp.path().join("bin/cargo"),
        &format!(
            "case \"$1 $2\" in\n\
             \"fuzz --version\") exit 0 ;;\n\
             \"fuzz list\") echo http_head ;;\n\
             *) echo \"$@\" >> {} ;;\n\
             esac",
            log.display()
        ),
    );
    let cwd = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    let path = format!(
        "{}:{}",
        tmp.path().join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let out = Command::new(repo().join("fuzz/run.sh"))
        .arg("1")
        .current_dir(&cwd)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", "build")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    let want = cwd.join("build/fuzz");
    assert!(
        calls.contains(&format!(
            "--target-dir {} http_head {}/corpus/http_head",
            want.display(),
            want.display()
        )),
        "{calls}"
    );
}

#[test]
fn the_virtualenv_is_looked_for_under_cargo_target_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("python-called");
    // A stand-in for the virtualenv's Python: it answers that the right
    // packages are there, so nothing is created, and says it was asked.
    let target = tmp.path().join("elsewhere/build");
    script(
        &target.join("test-venv/bin/python"),
        &format!("touch {}\nexit 0", marker.display()),
    );
    let out = Command::new(repo().join("scripts/install-test-deps"))
        .current_dir(tmp.path().join("elsewhere"))
        .env("CARGO_TARGET_DIR", "build")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        marker.exists(),
        "the virtualenv under CARGO_TARGET_DIR was not used"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("creating"));
}
