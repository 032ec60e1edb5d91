//! The lockfile reader and canonical writer.

use std::path::Path;

use driver_matrix::lock;

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/matrices/good/resolved.lock")
}

#[test]
fn read_write_round_trip_is_byte_identical() {
    let scrambled = lock::read(&fixture()).unwrap();
    let canonical = lock::render(&scrambled);
    let again = lock::render(&lock::read_str(Path::new("matrix.lock"), &canonical).unwrap());
    assert_eq!(canonical, again);
    insta::assert_snapshot!("canonical_lock", canonical);
}

#[test]
fn releases_are_sorted_by_semver_then_arch() {
    let l = lock::read(&fixture()).unwrap();
    let order: Vec<String> = l
        .releases
        .iter()
        .map(|r| format!("{} {}", r.version, r.arch))
        .collect();
    assert_eq!(order[0], "4.14.12 aarch64");
    assert_eq!(order[1], "4.14.12 x86_64");
    // 4.16.0-rc.3 sorts before 4.16.0's successors and after 4.15.3.
    let rc = order
        .iter()
        .position(|s| s.starts_with("4.16.0-rc.3"))
        .unwrap();
    let z3 = order.iter().position(|s| s.starts_with("4.16.3")).unwrap();
    let f = order.iter().position(|s| s.starts_with("4.15.3")).unwrap();
    assert!(f < rc && rc < z3);
}

#[test]
fn writes_atomically_and_only_when_the_bytes_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("matrix.lock");
    let l = lock::read(&fixture()).unwrap();
    assert!(lock::write_if_changed(&path, &l).unwrap());
    // An ordinary file of the repository, not a private temporary one.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!lock::write_if_changed(&path, &l).unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["matrix.lock"]);
}

#[test]
fn a_lock_of_another_format_version_is_an_error() {
    let err = lock::read_str(Path::new("matrix.lock"), "version = 2\n").unwrap_err();
    assert!(err.to_string().contains("format version 2"), "{err}");
    let err = lock::read_str(
        Path::new("matrix.lock"),
        "[[release]]\nversion = \"4.14.1\"\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("no `version` key"), "{err}");
}

#[test]
fn a_malformed_lock_is_an_error_that_points_at_the_problem() {
    let text = std::fs::read_to_string(fixture()).unwrap().replacen(
        "kernel = \"5.14",
        "kernel = \"garbage 5.14",
        1,
    );
    let err = lock::read_str(Path::new("matrix.lock"), &text).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("malformed") && msg.contains("garbage 5.14"),
        "{msg}"
    );
    let err = lock::read_str(
        Path::new("matrix.lock"),
        "version = 1\n[[image]]\ndriver = 3\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("malformed"));
}

#[test]
fn a_lock_left_by_a_command_is_not_overwritten_when_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("matrix.lock");
    std::fs::write(&path, "version = 1\n[[release]\n").unwrap();
    assert!(lock::read(&path).is_err());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "version = 1\n[[release]\n"
    );
}

/// A project whose lock sits beside a file outside it (`victim`), for the tests below.
fn project_and_victim(ns: &str, text: &str) -> (crate::support::Project, tempfile::TempDir) {
    let p = crate::support::Project::new(ns, &[crate::support::Driver::ok("a")]);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("victim.txt"), text).unwrap();
    (p, outside)
}

#[test]
fn a_link_at_the_writers_lock_is_refused_and_truncates_nothing() {
    let (p, outside) = project_and_victim("linkguard", "precious\n");
    let victim = outside.path().join("victim.txt");
    std::os::unix::fs::symlink(&victim, p.path().join("matrix.lock.lock")).unwrap();
    let err = p.cmd().args(["resolve"]).expect_exit(2).stderr();
    assert!(
        err.contains("matrix.lock.lock") && err.contains("is a symbolic link"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn a_link_at_the_lock_is_refused_and_what_it_points_at_never_shown() {
    let (p, outside) = project_and_victim("linklock", "root:x:0:0:root:/root:/bin/bash\n");
    let victim = outside.path().join("victim.txt");
    std::fs::remove_file(p.lock_path()).unwrap();
    std::os::unix::fs::symlink(&victim, p.lock_path()).unwrap();
    for args in [&["plan"][..], &["resolve"]] {
        let err = p.cmd().args(args).expect_exit(2).stderr();
        assert!(
            err.contains("lockfile `") && err.contains("matrix.lock` is a symbolic link"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("root:"), "{args:?}: {err}");
    }
    assert!(p.lock_path().is_symlink(), "the link is left as it was");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root:x:0:0:root:/root:/bin/bash\n"
    );
}

#[test]
fn a_file_that_is_not_a_lock_is_said_to_be_none_without_quoting_it() {
    let p = crate::support::Project::new("notalock", &[crate::support::Driver::ok("a")]);
    p.write(
        "matrix.lock",
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n",
    );
    let err = p
        .cmd()
        .args(["plan"])
        .expect_exit(2)
        .stderr_contains("is not a driver-matrix lock")
        .stderr();
    assert!(!err.contains("root:") && !err.contains("daemon"), "{err}");
    // Some other TOML file, with a version of its own.
    p.write(
        "matrix.lock",
        "version = \"secret-value\"\n[package]\nname = \"x\"\n",
    );
    let err = p
        .cmd()
        .args(["plan"])
        .expect_exit(2)
        .stderr_contains("is not a driver-matrix lock")
        .stderr();
    assert!(!err.contains("secret-value"), "{err}");
}

#[test]
fn a_malformed_lock_shows_the_offending_span_and_nothing_around_it() {
    let p = crate::support::Project::new("spanonly", &[crate::support::Driver::ok("a")]);
    let text = p.lock().replacen(
        "rhel = \"9.2\"\n",
        "# neighbour above\nrhel = 9.2.x\n# neighbour below\n",
        1,
    );
    p.write("matrix.lock", &text);
    let err = p.cmd().args(["plan"]).expect_exit(2).stderr();
    // `9.2.x` is an invalid float from its `.x` on: that much is shown, and where it is.
    assert!(
        err.contains("is malformed") && err.contains("| .x") && err.contains("matrix.lock:11"),
        "{err}"
    );
    assert!(!err.contains("neighbour") && !err.contains("rhel"), "{err}");
}
