//! The harness itself: every run of the binary is isolated from the machine's credentials and
//! HOME, and a failed expectation shows the command, its exit and both streams.

use std::collections::BTreeMap;

use crate::support::{Cmd, dm, in_dir};

/// What `cmd` sets (`Some`) and removes (`None`) in the environment it inherits.
fn envs(cmd: &Cmd) -> BTreeMap<String, Option<String>> {
    cmd.envs().into_iter().collect()
}

#[test]
fn every_run_has_a_home_of_its_own_and_none_of_the_machine_s_credentials() {
    let dir = tempfile::tempdir().unwrap();
    for (what, cmd) in [("dm", dm()), ("in_dir", in_dir(dir.path()))] {
        let env = envs(&cmd);
        let home = env["HOME"].clone().expect("HOME is set");
        assert_ne!(Some(&home), std::env::var("HOME").ok().as_ref(), "{what}");
        assert!(
            home.starts_with(&std::env::temp_dir().display().to_string()),
            "{what}: {home}"
        );
        for key in [
            "REGISTRY_AUTH_FILE",
            "DOCKER_CONFIG",
            "CONTAINERS_AUTH_FILE",
            "CONTAINERS_REGISTRIES_CONF",
            "DRIVER_MATRIX_CACHE_KEY",
            "XDG_RUNTIME_DIR",
            "XDG_CONFIG_HOME",
            "XDG_CACHE_HOME",
        ] {
            assert_eq!(
                env.get(key),
                Some(&None),
                "{what} leaves `{key}` to the machine"
            );
        }
        assert_eq!(env.get("NO_COLOR"), Some(&Some("1".to_string())), "{what}");
    }
}

#[test]
fn a_failed_expectation_shows_the_command_its_exit_and_both_streams() {
    let panic = std::panic::catch_unwind(|| dm().args(["no-such-command"]).run())
        .expect_err("exit 2 is not the expected 0");
    let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        text.contains("`driver-matrix no-such-command` in "),
        "{text}"
    );
    assert!(
        text.contains("expected exit Code(0), got exit status: 2"),
        "{text}"
    );
    assert!(
        text.contains("--- stderr\n") && text.contains("no-such-command"),
        "{text}"
    );

    let panic = std::panic::catch_unwind(|| {
        dm().args(["no-such-command"])
            .expect_exit(2)
            .stderr_contains("a text it does not print")
            .run()
    })
    .expect_err("stderr lacks the text");
    let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        text.contains("stderr lacks \"a text it does not print\""),
        "{text}"
    );
}

#[test]
fn expectations_that_hold_pass_and_return_the_output() {
    let out = dm()
        .args(["no-such-command"])
        .expect_exit_in(&[1, 2])
        .stderr_says("no-such-command")
        .run();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    dm().args(["no-such-command"]).expect_failure().run();
    let help = dm().arg("--help").stdout_contains("Usage:").stdout();
    assert!(help.contains("driver-matrix"), "{help}");
}
