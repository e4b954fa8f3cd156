//! `ringtail serve --help`: every option states its default, and the help
//! says that flags override the `--config` file.

use std::process::Command;

#[test]
fn serve_help_gives_every_default_and_says_flags_override_the_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    // Each option's entry: from its `--name` line to the next option.
    let mut options = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        if t.starts_with("--") || (t.starts_with('-') && t.contains(", --")) {
            options.push(String::new());
        }
        if let Some(o) = options.last_mut() {
            o.push_str(t);
            o.push(' ');
        }
    }
    assert!(options.len() > 20, "{help}");
    for o in &options {
        let name = o.split_whitespace().next().unwrap();
        if ["--help", "-h,"].contains(&name) {
            continue;
        }
        assert!(o.contains("[default: "), "no default for {name}: {o}");
    }
    assert!(
        options
            .iter()
            .any(|o| o.starts_with("--config") && o.contains("[default: none]")),
        "{help}"
    );
    assert!(
        help.contains("a flag given on the command line overrides the file"),
        "{help}"
    );
}

#[test]
fn a_toml_mistake_is_refused_with_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ringtail.toml");
    std::fs::write(
        &config,
        "threads = 1\nlog_level = \"info\"\n  grace = \"soon\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["serve", "--upload-dir"])
        .arg(dir.path().join("up"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ringtail.toml:3:11: "), "{err}");
}
