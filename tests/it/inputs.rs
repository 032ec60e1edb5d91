//! The inputs hash of build contexts: it follows content and mode, and nothing else.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use driver_matrix::inputs::hash_context;

fn context(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Containerfile"), "FROM scratch\n").unwrap();
    std::fs::write(dir.join("src/main.c"), "int x;\n").unwrap();
    std::fs::write(dir.join("build.sh"), "#!/bin/sh\n").unwrap();
}

#[test]
fn changes_with_content_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    context(dir.path());
    let before = hash_context(dir.path(), "Containerfile").unwrap();
    std::fs::write(dir.path().join("src/main.c"), "int y;\n").unwrap();
    let content = hash_context(dir.path(), "Containerfile").unwrap();
    assert_ne!(before, content);
    std::fs::set_permissions(
        dir.path().join("build.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mode = hash_context(dir.path(), "Containerfile").unwrap();
    assert_ne!(content, mode);
    std::fs::write(dir.path().join("src/new.h"), "").unwrap();
    assert_ne!(mode, hash_context(dir.path(), "Containerfile").unwrap());
}

#[test]
fn does_not_change_with_location_or_mtime() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    context(a.path());
    context(&b.path().join("elsewhere/deeper"));
    let ha = hash_context(a.path(), "Containerfile").unwrap();
    assert_eq!(
        ha,
        hash_context(&b.path().join("elsewhere/deeper"), "Containerfile").unwrap()
    );
    let f = std::fs::File::options()
        .write(true)
        .open(a.path().join("src/main.c"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    // Read-only group/other bits do not matter either; only the executable bit does.
    std::fs::set_permissions(
        a.path().join("Containerfile"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    assert_eq!(ha, hash_context(a.path(), "Containerfile").unwrap());
}

#[test]
fn ignored_files_do_not_count_and_containerignore_wins() {
    let dir = tempfile::tempdir().unwrap();
    context(dir.path());
    std::fs::write(dir.path().join(".dockerignore"), "*.log\n").unwrap();
    std::fs::write(dir.path().join("build.log"), "one").unwrap();
    let h = hash_context(dir.path(), "Containerfile").unwrap();
    std::fs::write(dir.path().join("build.log"), "two").unwrap();
    assert_eq!(h, hash_context(dir.path(), "Containerfile").unwrap());
    // .containerignore takes precedence over .dockerignore, as in buildah.
    std::fs::write(dir.path().join(".containerignore"), "src/\n").unwrap();
    let h2 = hash_context(dir.path(), "Containerfile").unwrap();
    std::fs::write(dir.path().join("build.log"), "three").unwrap();
    assert_ne!(h2, hash_context(dir.path(), "Containerfile").unwrap());
    let h3 = hash_context(dir.path(), "Containerfile").unwrap();
    std::fs::write(dir.path().join("src/main.c"), "changed").unwrap();
    assert_eq!(h3, hash_context(dir.path(), "Containerfile").unwrap());
}

/// buildah 1.28 prefers `<containerfile>.dockerignore`, then `<containerfile>.containerignore`,
/// then `.containerignore`, then `.dockerignore` (measured: each is the only file it reads).
#[test]
fn an_ignore_file_named_after_the_containerfile_wins_as_in_buildah() {
    let dir = tempfile::tempdir().unwrap();
    context(dir.path());
    let d = dir.path();
    std::fs::write(d.join("a"), "1").unwrap();
    std::fs::write(d.join("b"), "1").unwrap();
    // Which of `a` and `b` count, as seen through the hash.
    let counted = |name: &str| -> bool {
        let h = hash_context(d, "Containerfile").unwrap();
        std::fs::write(d.join(name), "2").unwrap();
        let changed = h != hash_context(d, "Containerfile").unwrap();
        std::fs::write(d.join(name), "1").unwrap();
        changed
    };
    std::fs::write(d.join(".dockerignore"), "a\n").unwrap();
    std::fs::write(d.join(".containerignore"), "b\n").unwrap();
    assert!(counted("a") && !counted("b"), ".containerignore first");
    std::fs::write(d.join("Containerfile.containerignore"), "a\n").unwrap();
    assert!(
        !counted("a") && counted("b"),
        "then <containerfile>.containerignore"
    );
    std::fs::write(d.join("Containerfile.dockerignore"), "b\n").unwrap();
    assert!(
        counted("a") && !counted("b"),
        "then <containerfile>.dockerignore"
    );
    assert_eq!(
        driver_matrix::inputs::ignore_file_in_effect(d, "Containerfile"),
        d.join("Containerfile.dockerignore")
    );
}

#[test]
fn the_containerfile_counts_even_when_ignored() {
    let dir = tempfile::tempdir().unwrap();
    context(dir.path());
    std::fs::write(dir.path().join(".containerignore"), "Containerfile\n").unwrap();
    let h = hash_context(dir.path(), "Containerfile").unwrap();
    std::fs::write(dir.path().join("Containerfile"), "FROM other\n").unwrap();
    assert_ne!(h, hash_context(dir.path(), "Containerfile").unwrap());
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_fifo_in_a_context_is_refused_without_being_opened() {
    let dir = tempfile::tempdir().unwrap();
    context(dir.path());
    mkfifo(&dir.path().join("src/pipe"));
    // Run off the test thread: the old code blocked forever opening the FIFO.
    let root = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(hash_context(&root, "Containerfile").map_err(|e| e.to_string()));
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("hashing a context with a FIFO hung");
    let err = got.expect_err("a FIFO was hashed");
    assert!(err.contains("src/pipe"), "{err}");
    assert!(err.contains("a FIFO"), "{err}");
    // A symlink to one stays allowed: it is recorded as a link, never opened.
    std::fs::remove_file(dir.path().join("src/pipe")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    mkfifo(&elsewhere.path().join("pipe"));
    std::os::unix::fs::symlink(elsewhere.path().join("pipe"), dir.path().join("src/pipe")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("src/zero")).unwrap();
    hash_context(dir.path(), "Containerfile").unwrap();
}

#[test]
fn an_ignore_file_that_is_a_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    context(dir.path());
    mkfifo(&dir.path().join(".containerignore"));
    let root = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(hash_context(&root, "Containerfile").map_err(|e| e.to_string()));
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("reading a FIFO .containerignore hung");
    assert!(got.expect_err("accepted").contains(".containerignore"));
}

/// `(driver, state)` of every job of `plan --format json`, sorted.
fn states(p: &crate::support::Project) -> Vec<(String, String)> {
    let out = p.cmd().args(["plan", "--format", "json"]).run();
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut v: Vec<(String, String)> = plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["driver"].as_str().unwrap().to_string(),
                j["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn all(drivers: &[&str], state: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = drivers
        .iter()
        .flat_map(|d| std::iter::repeat_n((d.to_string(), state.to_string()), 2))
        .collect();
    v.sort();
    v
}

/// The contents of `path` (relative, no leading `/`) in the last layer of `image` that has it.
fn file_in_image(image: &str, path: &str) -> String {
    let (_, bytes) = crate::support::image_files(image, |p| p == path)
        .pop()
        .unwrap_or_else(|| panic!("no `{path}` in {image}"));
    String::from_utf8(bytes).unwrap()
}

/// The layout `init` writes: a context (`.`) that holds the matrix, the lock, the writer's
/// lock, the cache, and another driver's context. A build leaves every job fresh, `--locked`
/// agrees, a comment in the matrix changes nothing, and an edited source file makes exactly
/// its driver's jobs stale.
#[test]
fn a_context_holding_the_matrix_and_the_lock_stays_fresh() {
    use crate::support::{Driver, K1, K2, Project};
    let p = Project::new("ctxdot", &[Driver::ok("beta")]);
    let matrix = std::fs::read_to_string(p.path().join("matrix.toml")).unwrap();
    let beta = matrix.find("\n[[driver]]").unwrap();
    let alpha = matrix[beta..]
        .replace("name = \"beta\"", "name = \"alpha\"")
        .replace(
            "context = \"drivers/beta\"",
            "context = \".\"\ncontainerfile = \"Containerfile.alpha\"",
        )
        .replace("/beta\"", "/alpha\"")
        .replace("\"beta\"", "\"alpha\"");
    p.write("matrix.toml", &format!("{matrix}{alpha}"));
    p.write(
        "Containerfile.alpha",
        "ARG DTK_IMAGE\nFROM ${DTK_IMAGE}\nARG KERNEL_FULL_VERSION\nCOPY . /src\n\
         COPY drivers/beta/modules/${KERNEL_FULL_VERSION}/ /opt/lib/modules/${KERNEL_FULL_VERSION}/\n\
         RUN ls -a /src > /listing\n",
    );
    p.write("alpha.c", "int alpha;\n");
    // The test's own litter: the buildah shim and its record of calls.
    p.write(
        ".containerignore",
        "bin\nbuildah-calls\n.config\n.local\n.cache\n",
    );
    let drivers = ["alpha", "beta"];
    assert_eq!(states(&p), all(&drivers, "new"));
    let lock_before = p.lock();
    p.cmd().args(["build", "--kernel", K1]).run();
    p.cmd().args(["build", "--kernel", K2]).run();
    assert_ne!(p.lock(), lock_before);
    assert!(p.path().join("matrix.lock.lock").exists());
    assert_eq!(states(&p), all(&drivers, "fresh"));
    // buildah was sent exactly what the hash covers: the image's listing of its context.
    let listing = file_in_image(
        &format!("{}/ctxdot/alpha:{K1}", crate::support::registry().addr()),
        "listing",
    );
    let sent: Vec<&str> = listing
        .lines()
        .filter(|l| !matches!(*l, "." | ".."))
        .collect();
    assert_eq!(
        sent,
        [
            ".containerignore",
            "Containerfile.alpha",
            "alpha.c",
            "drivers"
        ],
        "{listing}"
    );
    p.reset_calls();
    p.cmd().args(["build"]).run();
    assert_eq!(p.builds(), 0, "a second build builds nothing");
    p.cmd().args(["build", "--locked"]).run();

    let commented = format!(
        "# a comment\n{}",
        std::fs::read_to_string(p.path().join("matrix.toml")).unwrap()
    );
    p.write("matrix.toml", &commented);
    assert_eq!(states(&p), all(&drivers, "fresh"));
    p.cmd().args(["build", "--locked"]).run();

    p.write("alpha.c", "int alpha = 1;\n");
    let mut want = all(&["alpha"], "stale");
    want.extend(all(&["beta"], "fresh"));
    assert_eq!(states(&p), want);
    p.cmd().args(["build", "--locked"]).expect_exit(3).run();
}

/// The `io.driver-matrix.inputs` labels a `build --dry-run` would set, in order.
fn dry_run_inputs(p: &crate::support::Project, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["build", "--dry-run"];
    args.extend_from_slice(extra);
    let out = p.cmd().args(args).stdout();
    let labels: Vec<String> = out
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("io.driver-matrix.inputs="))
        .map(str::to_string)
        .collect();
    assert!(!labels.is_empty(), "{out}");
    labels
}

/// A secret inside a build context is refused at its matrix key (exit 2) unless the context's
/// ignore file leaves it out; then it is never an input, nor is a `--secret` file there.
#[test]
fn a_secret_inside_a_context_is_refused_unless_ignored_and_never_hashed() {
    use crate::support::{Driver, Project};
    let p = Project::new("ctxsecret", &[Driver::ok("beta")]);
    std::fs::create_dir_all(p.path().join("drivers/beta/keys")).unwrap();
    p.write("drivers/beta/keys/signing.key", "first key\n");
    p.write("drivers/beta/keys/cli.key", "first cli key\n");
    let matrix = std::fs::read_to_string(p.path().join("matrix.toml")).unwrap();
    p.write(
        "matrix.toml",
        &format!("{matrix}secrets = {{ signing-key = \"drivers/beta/keys/signing.key\" }}\n"),
    );
    let err = p.cmd().args(["plan"]).expect_exit(2).stderr();
    assert!(
        crate::support::says(
            &err,
            "secret `drivers/beta/keys/signing.key` lies inside the build context `drivers/beta`"
        ),
        "{err}"
    );
    assert!(err.contains("matrix.toml:"), "points at the matrix: {err}");
    assert!(
        crate::support::says(&err, "/drivers/beta/.containerignore`, or move the file"),
        "{err}"
    );

    p.write("drivers/beta/.containerignore", "keys/signing.key\n");
    let cli = p
        .cmd()
        .args([
            "build",
            "--dry-run",
            "--secret",
            "cli=drivers/beta/keys/cli.key",
        ])
        .expect_exit(2)
        .run();
    assert!(
        crate::support::says(&cli.stderr, "inside the build context of driver `beta`"),
        "{}",
        cli.stderr
    );

    p.write("drivers/beta/.containerignore", "keys/\n");
    let secret = ["--secret", "cli=drivers/beta/keys/cli.key"];
    let before = dry_run_inputs(&p, &secret);
    p.write("drivers/beta/keys/signing.key", "second key\n");
    p.write("drivers/beta/keys/cli.key", "second cli key\n");
    assert_eq!(dry_run_inputs(&p, &secret), before);
    // The hash still follows the context: the same test, with a source file.
    p.write("drivers/beta/src/hello.c", "int changed;\n");
    assert_ne!(dry_run_inputs(&p, &secret), before);
}
