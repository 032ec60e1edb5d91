//! The command line users script against: `--help`, completions, exit codes for bad usage.

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_driver-matrix"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn help_lists_every_command_of_the_contract() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in [
        "resolve", "plan", "build", "verify", "diff", "export", "collect", "releases", "schema",
    ] {
        assert!(
            help.contains(&format!("\n  {cmd} ")),
            "`{cmd}` missing from --help:\n{help}"
        );
    }
    insta::assert_snapshot!("help", help);
}

#[test]
fn completions_for_each_shell_name_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("driver-matrix") && text.contains("collect"),
            "{shell}:\n{text}"
        );
    }
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(run(&["plan", "--format", "yaml"]).status.code(), Some(2));
    assert_eq!(run(&["build", "--shard", "3/3"]).status.code(), Some(2));
    // A missing matrix file is a usage error that names the file.
    let out = run(&["-m", "/nonexistent/matrix.toml", "--offline", "plan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/matrix.toml"));
}

/// Each command's `--help` shows the global options it honours, and only those; the others
/// are still accepted (the contract calls them global), so scripts that pass them everywhere
/// keep working.
#[test]
fn each_command_s_help_shows_the_options_it_honours() {
    let all = [
        "--matrix",
        "--lockfile",
        "--authfile",
        "--cert-dir",
        "--cache-dir",
        "--offline",
        "--no-wait",
    ];
    let cases: [(&[&str], &[&str]); 8] = [
        (&["init"], &[]),
        (&["schema"], &[]),
        (&["diff"], &["--matrix", "--lockfile"]),
        (&["releases"], &["--matrix", "--authfile", "--cert-dir"]),
        (
            &["verify"],
            &[
                "--matrix",
                "--lockfile",
                "--authfile",
                "--cert-dir",
                "--cache-dir",
            ],
        ),
        (
            &["plan"],
            &[
                "--matrix",
                "--lockfile",
                "--authfile",
                "--cert-dir",
                "--cache-dir",
                "--offline",
            ],
        ),
        (&["build"], &all),
        (
            &["export", "kmm"],
            &[
                "--matrix",
                "--lockfile",
                "--authfile",
                "--cert-dir",
                "--cache-dir",
                "--offline",
            ],
        ),
    ];
    for (cmd, shown) in cases {
        let out = run(&[cmd, &["--help"]].concat());
        assert!(out.status.success(), "{cmd:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        for opt in all {
            assert_eq!(
                help.contains(&format!(" {opt} ")) || help.contains(&format!(" {opt}\n")),
                shown.contains(&opt),
                "{cmd:?} --help and {opt}:\n{help}"
            );
        }
        for common in ["--quiet", "--verbose", "--color"] {
            assert!(help.contains(common), "{cmd:?}: {common}");
        }
    }
    insta::assert_snapshot!(
        "init_help",
        String::from_utf8(run(&["init", "--help"]).stdout).unwrap()
    );
    // Still accepted where they do nothing, before or after the command.
    let out = run(&["--offline", "--no-wait", "schema"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["schema", "--lockfile", "x.lock"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
