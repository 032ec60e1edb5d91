//! The command line users script against: `--help`, completions, exit codes for bad usage.

use crate::support::dm;

#[test]
fn help_lists_every_command_of_the_contract() {
    let help = dm().arg("--help").stdout();
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
        let text = dm().args(["completions", shell]).stdout();
        assert!(
            text.contains("driver-matrix") && text.contains("collect"),
            "{shell}:\n{text}"
        );
    }
}

#[test]
fn bad_usage_exits_2() {
    dm().arg("no-such-command").expect_exit(2).run();
    dm().args(["plan", "--format", "yaml"]).expect_exit(2).run();
    dm().args(["build", "--shard", "3/3"]).expect_exit(2).run();
    // A missing matrix file is a usage error that names the file.
    dm().args(["-m", "/nonexistent/matrix.toml", "--offline", "plan"])
        .expect_exit(2)
        .stderr_contains("/nonexistent/matrix.toml")
        .run();
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
        let help = dm().args(cmd).arg("--help").stdout();
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
    insta::assert_snapshot!("init_help", dm().args(["init", "--help"]).stdout());
    // Still accepted where they do nothing, before or after the command.
    dm().args(["--offline", "--no-wait", "schema"]).run();
    dm().args(["schema", "--lockfile", "x.lock"]).run();
}
