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
