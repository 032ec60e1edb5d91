//! Credentials go only where they belong, against a real docker-registry requiring htpasswd
//! auth on loopback: buildah gets the same merged credentials as the native client (so a run
//! that resolves can push), credential helpers answer for their host, and no output, log, lock,
//! cache or generated file ever holds the password or its base64 forms. Also: the machine's
//! registries configuration (a blocked registry) survives the generated registries.conf.

use std::convert::identity;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;
use base64::Engine as _;
use driver_matrix_sandbox::Registry;
use driver_matrix_sandbox::registry::Options;

const USER: &str = "pusher";
const PASSWORD: &str = "pa55-w0rd-xyzzy";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Every form of the secret that must never be shown.
fn secrets() -> Vec<String> {
    vec![
        PASSWORD.to_string(),
        b64(&format!("{USER}:{PASSWORD}")),
        b64(PASSWORD),
    ]
}

/// A registry requiring `USER`/`PASSWORD`; started from a thread that never ends (see
/// `support::registry`).
fn auth_registry(dir: &Path) -> Registry {
    let out = Command::new("htpasswd")
        .args(["-Bbn", USER, PASSWORD])
        .output()
        .expect("htpasswd (apt-get install apache2-utils)");
    assert!(out.status.success());
    let htpasswd = dir.join("htpasswd");
    std::fs::write(&htpasswd, out.stdout).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let reg = Registry::start(Options {
            htpasswd: Some(htpasswd),
            ..Options::default()
        });
        tx.send(reg).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap().unwrap()
}

/// Fails naming the place when any secret form is in `text`.
fn assert_clean(what: &str, text: &str) {
    for s in secrets() {
        assert!(
            !text.contains(&s),
            "{what} holds a secret form `{s}`:\n{text}"
        );
    }
}

/// Every regular file under `dir`, read as text.
fn assert_clean_tree(dir: &Path) {
    for e in walk(dir) {
        let bytes = std::fs::read(&e).unwrap_or_default();
        assert_clean(&e.display().to_string(), &String::from_utf8_lossy(&bytes));
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out
}

/// The project's driver pushed to `reg` (insecure) instead of the shared registry.
fn push_to(p: &Project, reg: &str) {
    let m = std::fs::read_to_string(p.path().join("matrix.toml")).unwrap();
    let m = m.replace(
        &format!("image = \"{}/", registry().addr()),
        &format!("image = \"{reg}/"),
    );
    p.write(
        "matrix.toml",
        &format!("{m}\n[registries.\"{reg}\"]\ninsecure = true\n"),
    );
}

/// `driver-matrix ARGS` in `p` with `home` as HOME, `auth` as REGISTRY_AUTH_FILE, `tmp` as
/// TMPDIR.
/// `verify` and `collect` run without the project's `--offline`. `expect` says how it ends;
/// neither stream may hold a secret.
fn run(
    p: &Project,
    home: &Path,
    auth: &Path,
    tmp: &Path,
    args: &[&str],
    expect: impl FnOnce(Cmd) -> Cmd,
) -> Out {
    let online = matches!(
        args.iter().find(|a| !a.starts_with('-')),
        Some(&"verify" | &"collect")
    );
    let cmd = if online { p.online() } else { p.cmd() };
    let cmd = cmd
        .args(args)
        .env("HOME", home)
        .env("REGISTRY_AUTH_FILE", auth)
        .env("TMPDIR", tmp);
    let out = expect(cmd).run();
    assert_clean(&format!("stdout of {args:?}"), &out.stdout);
    assert_clean(&format!("stderr of {args:?}"), &out.stderr);
    out
}

#[test]
fn buildah_pushes_with_the_merged_credentials_and_nothing_shows_a_secret() {
    let secrets_dir = tempfile::tempdir().unwrap();
    let reg = auth_registry(secrets_dir.path());
    let p = Project::with_releases("creds", &[Driver::ok("hello")], &[("4.14.1", K1)]);
    push_to(&p, reg.addr());
    let home = p.path().join("home");
    let tmp = p.path().join("tmp");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    // The first file of the lookup order exists but has nothing for the registry; the
    // credentials are in the last one. The native client merges them; buildah used to get the
    // first file only, and its push was refused.
    let first = p.path().join("first-auth.json");
    std::fs::write(
        &first,
        format!(
            r#"{{"auths":{{"other.example":{{"auth":"{}"}}}}}}"#,
            b64("x:y")
        ),
    )
    .unwrap();
    std::fs::write(
        home.join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.addr(),
            b64(&format!("{USER}:{PASSWORD}"))
        ),
    )
    .unwrap();

    let dry = run(
        &p,
        &home,
        &first,
        &tmp,
        &["-vv", "build", "--dry-run"],
        identity,
    );
    assert!(!dry.stdout.contains("--tls-verify"), "{}", dry.stdout);
    run(&p, &home, &first, &tmp, &["-vv", "build", "-j1"], identity);
    assert!(p.lock().contains("[[image]]"), "{}", p.lock());
    run(
        &p,
        &home,
        &first,
        &tmp,
        &["-v", "verify", "--deep"],
        identity,
    );
    run(
        &p,
        &home,
        &first,
        &tmp,
        &["-q", "build", "--force"],
        identity,
    );
    // `collect` reads the payloads from quay.io, out of reach here: what it prints matters,
    // not how it ends.
    run(&p, &home, &first, &tmp, &["collect"], Cmd::any_exit);
    run(
        &p,
        &home,
        &first,
        &tmp,
        &["plan", "--format", "json"],
        identity,
    );

    // Wrong password: errors name the file, never the secret (nor the wrong one's forms).
    std::fs::write(
        home.join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.addr(),
            b64(&format!("{USER}:{PASSWORD}-wrong"))
        ),
    )
    .unwrap();
    run(
        &p,
        &home,
        &first,
        &tmp,
        &["-vv", "build", "--force"],
        Cmd::expect_failure,
    );

    // The merged file lived in a private temporary directory, gone with the run.
    let left: Vec<PathBuf> = walk(&tmp);
    assert!(left.is_empty(), "{left:?}");
    assert_clean("the lock", &p.lock());
    assert_clean_tree(&p.path().join("cache"));
    assert_clean(
        "matrix.toml",
        &std::fs::read_to_string(p.path().join("matrix.toml")).unwrap(),
    );
}

#[test]
fn a_credential_helper_answers_for_its_host() {
    let secrets_dir = tempfile::tempdir().unwrap();
    let reg = auth_registry(secrets_dir.path());
    let p = Project::with_releases("helper", &[Driver::ok("hello")], &[("4.14.1", K1)]);
    push_to(&p, reg.addr());
    let home = p.path().join("home");
    let tmp = p.path().join("tmp");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    // `docker-credential-dmtest get`: the host on stdin, JSON on stdout; it notes who ran it.
    let asked = p.path().join("asked");
    let parents = p.path().join("parents");
    std::fs::write(
        p.path().join("bin/docker-credential-dmtest"),
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\ncat >> '{}'\necho >> '{}'\n\
             cat /proc/$PPID/comm >> '{}'\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' x\n",
            asked.display(),
            asked.display(),
            parents.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        p.path().join("bin/docker-credential-dmtest"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let config = home.join(".docker/config.json");
    std::fs::write(
        &config,
        format!(r#"{{"credHelpers":{{"{}":"dmtest"}}}}"#, reg.addr()),
    )
    .unwrap();
    let none = p.path().join("none.json");
    run(&p, &home, &none, &tmp, &["-v", "build", "-j1"], identity);
    assert!(p.lock().contains("[[image]]"), "{}", p.lock());
    let asked = std::fs::read_to_string(&asked).unwrap();
    assert!(asked.lines().all(|l| l == reg.addr()), "{asked}");
    // Once per run: the file buildah gets is made from the answers the client keeps.
    assert_eq!(asked.lines().count(), 1, "{asked}");
    // Only driver-matrix ran the helper, under its time limit: buildah was given the answer
    // as `auths`, and ran no helper of its own.
    let parents = std::fs::read_to_string(&parents).unwrap();
    assert!(
        !parents.is_empty() && parents.lines().all(|l| l == "driver-matrix"),
        "{parents}"
    );

    // A credsStore is ignored, as containers tools ignore it (the 401 help says so).
    std::fs::write(&config, r#"{"credsStore":"dmtest"}"#).unwrap();
    run(&p, &home, &none, &tmp, &["verify"], |c| c.expect_exit(4));
    assert_clean_tree(&p.path().join("cache"));
}

#[test]
fn a_credential_helper_that_hangs_is_stopped_and_named() {
    let secrets_dir = tempfile::tempdir().unwrap();
    let reg = auth_registry(secrets_dir.path());
    let p = Project::with_releases("helperhang", &[Driver::ok("hello")], &[("4.14.1", K1)]);
    push_to(&p, reg.addr());
    let home = p.path().join("home");
    let tmp = p.path().join("tmp");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    // A helper that never answers, and whose child holds its output open.
    let pids = p.path().join("helper-pids");
    let helper = p.path().join("bin/docker-credential-dmslow");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nsleep 600 & echo $! >> '{}'\nwait\n",
            pids.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        home.join(".docker/config.json"),
        format!(r#"{{"credHelpers":{{"{}":"dmslow"}}}}"#, reg.addr()),
    )
    .unwrap();
    // The release payloads come from the registry that needs credentials.
    let m = std::fs::read_to_string(p.path().join("matrix.toml")).unwrap();
    p.write(
        "matrix.toml",
        &m.replacen(
            "[openshift]\n",
            &format!(
                "[openshift]\npayload-repo = \"{}/ocp/release\"\n",
                reg.addr()
            ),
            1,
        ),
    );
    // `resolve` online (without the project's `--offline`).
    let started = std::time::Instant::now();
    let out = p
        .online()
        .env("HOME", &home)
        .env("REGISTRY_AUTH_FILE", p.path().join("none.json"))
        .env("TMPDIR", &tmp)
        .arg("resolve")
        .expect_exit(4)
        .run();
    let took = started.elapsed();
    let err = format!("{}{}", out.stdout, out.stderr);
    assert!(
        took < std::time::Duration::from_secs(120),
        "the run waited {took:?}"
    );
    // The message as one line: the report wraps it at any width.
    let flat: String = err.split_whitespace().collect();
    let needle = format!(
        "the credential helper `docker-credential-dmslow` named in `{}` failed: \
         `docker-credential-dmslow get` did not answer for `{}` within 30s and was stopped",
        home.join(".docker/config.json").display(),
        reg.addr()
    );
    let needle: String = needle.split_whitespace().collect();
    assert!(flat.contains(&needle), "{err}");
    // The helper's processes are gone.
    for pid in std::fs::read_to_string(&pids).unwrap().lines() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        assert!(stat.is_empty() || zombie, "helper child {pid} survives");
    }
}

#[test]
fn a_registry_the_machine_blocks_stays_blocked_for_buildah() {
    let p = Project::with_releases("blocked", &[Driver::ok("hello")], &[("4.14.1", K1)]);
    let reg = registry().addr();
    let machine = p.path().join("machine-registries.conf");
    std::fs::write(
        &machine,
        format!(
            "short-name-mode = \"enforcing\"\n\n[[registry]]\nlocation = \"{reg}\"\nblocked = true\n"
        ),
    )
    .unwrap();
    p.cmd()
        .args(["build", "-j1"])
        .env("CONTAINERS_REGISTRIES_CONF", &machine)
        .expect_exit(1)
        .run();
    // The generated file keeps the block (and adds the matrix's insecure flag to that entry).
    let generated = walk(&p.path().join("cache/registries"));
    assert_eq!(generated.len(), 1, "{generated:?}");
    let text = std::fs::read_to_string(&generated[0]).unwrap();
    let conf: toml::Table = text.parse().unwrap();
    assert_eq!(
        conf["short-name-mode"].as_str(),
        Some("enforcing"),
        "{text}"
    );
    let entry = &conf["registry"].as_array().unwrap()[0];
    assert_eq!(entry["location"].as_str(), Some(reg), "{text}");
    assert_eq!(entry["blocked"].as_bool(), Some(true), "{text}");
    assert_eq!(entry["insecure"].as_bool(), Some(true), "{text}");
    // buildah refused the pull from the blocked registry.
    let logs: String = walk(&p.path().join("cache/logs"))
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    assert!(logs.contains("blocked"), "{logs}");
}
