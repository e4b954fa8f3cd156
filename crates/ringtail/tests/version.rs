//! `ringtail --version`: the package version and the git revision it was
//! built from.

use std::process::Command;

#[test]
fn version_names_the_package_version_and_the_git_revision() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let prefix = format!("ringtail {} (", env!("CARGO_PKG_VERSION"));
    let rev = text
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("{text:?}"));
    // The checkout's revision (cargo rebuilt the binary when HEAD moved),
    // or "unknown" outside one.
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_owned());
    match (std::env::var("RINGTAIL_GIT_REV"), head) {
        (Ok(set), _) if !set.is_empty() => assert_eq!(rev, set),
        (_, Some(head)) => assert_eq!(rev, head),
        (_, None) => assert_eq!(rev, "unknown"),
    }
}
