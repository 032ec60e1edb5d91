//! `resolve`, `releases` and `plan` online: credentials, the update graph, a mirror of quay.io,
//! the cache, `--offline` and `--locked`.

use crate::support::*;
use base64::Engine as _;
use driver_matrix_sandbox::registry::Options;
use driver_matrix_sandbox::{DtkSpec, Flavor, GraphServer, PayloadSpec, Registry, graph};

fn htpasswd(dir: &std::path::Path, user: &str, password: &str) -> std::path::PathBuf {
    let out = std::process::Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .expect("htpasswd (apt-get install apache2-utils)");
    assert!(out.status.success());
    let path = dir.join("htpasswd");
    std::fs::write(&path, out.stdout).unwrap();
    path
}

fn authfile(path: &std::path::Path, host: &str, user: &str, password: &str) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        path,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
}

#[test]
fn a_registry_requiring_auth() {
    let secrets = tempfile::tempdir().unwrap();
    let reg = Registry::start(Options {
        htpasswd: Some(htpasswd(secrets.path(), "puller", "s3cret-pw")),
        ..Options::default()
    })
    .unwrap();
    let w = World::on(reg.addr(), "auth", Some(("puller", "s3cret-pw")));
    w.release("4.14.12", &DtkSpec::new(K_414), Flavor::Docker);
    w.matrix(r#"releases = ["4.14.12"]"#, "");

    // No credentials anywhere: exit 4, and the message says where it looked.
    let err = w.cmd().args(["resolve"]).expect_exit(4).stderr();
    assert!(says(&err, "4.14.12 (x86_64)") && says(&err, "401"), "{err}");
    assert!(says(&err, "no credentials"), "{err}");

    // Wrong password: the message names the file used, never the secret.
    let bad = w.path("bad-auth.json");
    authfile(&bad, reg.addr(), "puller", "wrong-pw");
    let out = w
        .cmd()
        .args(["--authfile", bad.to_str().unwrap(), "resolve"])
        .expect_exit(4)
        .run();
    let err = out.stderr.clone();
    assert!(
        says(&err, "bad-auth.json") && !says(&err, "puller"),
        "{err}"
    );
    assert!(!says(&err, "wrong-pw"), "{err}");

    // Right password through the lookup order (~/.docker/config.json under HOME).
    std::fs::create_dir_all(w.path(".docker")).unwrap();
    authfile(
        &w.path(".docker/config.json"),
        reg.addr(),
        "puller",
        "s3cret-pw",
    );
    let out = w.cmd().args(["resolve"]).run();
    assert!(!says(&out.stderr, "s3cret-pw"));
    assert!(
        w.lock()
            .contains("kernel = \"5.14.0-284.52.1.el9_2.x86_64\"")
    );
}

#[test]
fn channels_expand_through_an_unordered_graph() {
    let w = World::new("graph");
    let server = GraphServer::start().unwrap();
    // 4.16.9 and 4.16.10 exist only by digest: the graph's payload must be used.
    let repo = w.repo("release");
    let mut nodes = Vec::new();
    for (i, v) in ["4.16.10", "4.15.40", "4.16.2", "4.16.9"]
        .iter()
        .enumerate()
    {
        let (dtk, _) = w.dtk(
            &DtkSpec::new(&format!("5.14.0-{i}.el9_4.x86_64")),
            "amd64",
            Flavor::Oci,
        );
        let p = PayloadSpec::new(v, Some(dtk))
            .push(&w.pusher, &repo, None, "amd64", Flavor::Oci)
            .unwrap();
        nodes.push((v.to_string(), format!("{}/{repo}@{}", w.addr, p.digest)));
    }
    let refs: Vec<(&str, &str)> = nodes
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    server.set("stable-4.16", "amd64", graph::graph_json(&refs));
    w.matrix(
        &format!(
            "channels = [{{ name = \"stable-4.16\", latest = 2 }}]\ngraph-url = \"{}\"",
            server.url()
        ),
        "",
    );
    w.cmd().args(["resolve"]).run();
    let lock = w.lock();
    let versions: Vec<&str> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("version = \""))
        .collect();
    assert_eq!(versions, ["4.16.9\"", "4.16.10\""], "{lock}");
    assert!(
        lock.contains(&nodes[0].1) && lock.contains(&nodes[3].1),
        "{lock}"
    );
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.contains("channel=stable-4.16&arch=amd64"))
    );

    let out = w.cmd().args(["releases", "stable-4.16"]).run();
    assert_eq!(out.stdout, "4.15.40\n4.16.2\n4.16.9\n4.16.10\n");

    // Offline, the channel is what the lock holds.
    w.cmd()
        .args(["--offline", "plan", "--format", "json"])
        .stdout_contains("jobs")
        .run();
}

#[test]
fn a_mirror_of_quay_io_serves_every_read() {
    let w = World::new("mirror");
    // The payload names quay.io; everything lives under <registry>/<ns>/ instead.
    let dtk = DtkSpec::new(K_414);
    let dtk_repo = w.repo("openshift-release-dev/ocp-v4.0-art-dev");
    let pushed = dtk
        .push(&w.pusher, &dtk_repo, "amd64", Flavor::Docker)
        .unwrap();
    let quay_dtk = format!(
        "quay.io/openshift-release-dev/ocp-v4.0-art-dev@{}",
        pushed.digest
    );
    let spec = PayloadSpec::new("4.14.12", Some(quay_dtk.clone()));
    spec.push(
        &w.pusher,
        &w.repo("openshift-release-dev/ocp-release"),
        Some("4.14.12-x86_64"),
        "amd64",
        Flavor::Docker,
    )
    .unwrap();
    let mirror = format!("{}/{}", w.addr, w.ns);
    w.matrix_raw(&format!(
        "[openshift]\nreleases = [\"4.14.12\"]\n\n[registries.\"quay.io\"]\nmirror = \"{mirror}\"\n\n[registries.\"{}\"]\ninsecure = true\n",
        w.addr
    ));
    w.cmd().args(["resolve"]).run();
    let lock = w.lock();
    assert!(!lock.contains(&w.addr), "{lock}");
    assert!(lock.contains(&format!("dtk = \"{quay_dtk}\"")), "{lock}");
    // No port and no namespace in it: the digests are stable, so they stay in the snapshot.
    insta::assert_snapshot!(lock);

    // A digest missing on the mirror: the error names the source and the mirror URL.
    let mut missing = DtkSpec::new(K_416);
    missing.rhel = "9.4".into();
    let absent = missing
        .push(&w.pusher, &w.repo("elsewhere"), "amd64", Flavor::Docker)
        .unwrap();
    let spec = PayloadSpec::new(
        "4.14.13",
        Some(format!(
            "quay.io/openshift-release-dev/ocp-v4.0-art-dev@{}",
            absent.digest
        )),
    );
    spec.push(
        &w.pusher,
        &w.repo("openshift-release-dev/ocp-release"),
        Some("4.14.13-x86_64"),
        "amd64",
        Flavor::Docker,
    )
    .unwrap();
    w.matrix_raw(&format!(
        "[openshift]\nreleases = [\"4.14.12\", \"4.14.13\"]\n\n[registries.\"quay.io\"]\nmirror = \"{mirror}\"\n\n[registries.\"{}\"]\ninsecure = true\n",
        w.addr
    ));
    let err = w.cmd().args(["resolve"]).expect_exit(4).stderr();
    assert!(
        says(
            &err,
            &format!(
                "quay.io/openshift-release-dev/ocp-v4.0-art-dev@{}",
                absent.digest
            )
        ),
        "{err}"
    );
    assert!(
        says(
            &err,
            &format!("http://{mirror}/openshift-release-dev/ocp-v4.0-art-dev")
        ) || says(
            &err,
            &format!(
                "http://{}/v2/{}/openshift-release-dev/ocp-v4.0-art-dev",
                w.addr, w.ns
            )
        ),
        "{err}"
    );
}

#[test]
fn the_cache_offline_and_locked() {
    let w = World::new("cache");
    w.release("4.14.12", &DtkSpec::new(K_414), Flavor::Docker);
    w.release("4.14.13", &DtkSpec::new(K_414), Flavor::Docker);
    w.matrix(r#"releases = ["4.14.12", "4.14.13"]"#, "");
    w.cmd()
        .args(["-v", "resolve"])
        .stderr_says("2 from the registry")
        .run();
    let lock = w.lock();

    // Second run: one manifest request (a HEAD) per release, nothing else.
    std::fs::remove_file(w.path("matrix.lock")).unwrap();
    w.cmd()
        .args(["-v", "resolve"])
        .stderr_says("registry: 2 requests")
        .run();
    assert_eq!(w.lock(), lock);

    // Offline with the lock gone: the cache alone answers.
    std::fs::remove_file(w.path("matrix.lock")).unwrap();
    w.cmd().args(["--offline", "resolve"]).run();
    assert_eq!(w.lock(), lock);

    // A release neither locked nor cached: offline fails clearly.
    w.matrix(r#"releases = ["4.14.12", "4.14.13", "4.14.14"]"#, "");
    w.cmd()
        .args(["--offline", "resolve"])
        .expect_exit(2)
        .stderr_says("4.14.14 (x86_64) is neither in the lock nor in the cache")
        .run();

    // `--locked` with a change pending: exit 3, the lock untouched.
    w.release("4.14.14", &DtkSpec::new(K_416), Flavor::Docker);
    w.cmd()
        .args(["resolve", "--locked"])
        .expect_exit(3)
        .stderr_says("added 4.14.14 (x86_64)")
        .run();
    assert_eq!(w.lock(), lock);

    // Dropping a release from the matrix drops it from the lock.
    w.matrix(r#"releases = ["4.14.13"]"#, "");
    w.cmd().args(["resolve"]).run();
    assert!(!w.lock().contains("4.14.12"));

    // `plan` resolves online without writing the lock.
    w.matrix(r#"releases = ["4.14.13", "4.14.14"]"#, "");
    let before = w.lock();
    w.cmd().args(["plan"]).run();
    assert_eq!(w.lock(), before);
}

#[test]
fn a_release_that_does_not_exist_is_a_matrix_error_naming_where_it_was_asked() {
    let w = World::new("norelease");
    w.publish(&[(&["4.15.8"], K_414)]);
    let (dtk, _) = w.dtk(&DtkSpec::new(K_416), "amd64", Flavor::Docker);
    PayloadSpec::new("4.16.2", Some(dtk))
        .push(
            &w.pusher,
            &w.repo("release"),
            Some("4.16.2-multi"),
            "amd64",
            Flavor::Docker,
        )
        .unwrap();
    for (version, nearest) in [("4.15.9", "4.15.8-x86_64"), ("4.16.2", "4.16.2-multi")] {
        w.matrix(&format!("releases = [\"{version}\"]"), "");
        let err = w.cmd().args(["resolve"]).expect_exit(2).stderr();
        assert!(
            says(&err, &format!("`{}/{}`", w.addr, w.repo("release")))
                && says(&err, &format!("no tag `{version}-x86_64`")),
            "the host and repository asked: {err}"
        );
        assert!(says(&err, &format!("`{nearest}`")), "{err}");
        // The matrix line: the file, and its line with the version under a label.
        assert!(
            err.contains("matrix.toml:3:") && says(&err, "no such release"),
            "{err}"
        );
        assert!(!err.contains("cannot reach"), "{err}");
    }
}

#[test]
fn an_unknown_channel_is_a_matrix_error_naming_the_channel() {
    let w = World::new("nochannel");
    let server = GraphServer::start().unwrap();
    // Unknown to the graph: it answers 404.
    w.matrix(
        &format!(
            "channels = [{{ name = \"stable-4.61\", latest = 1 }}]\ngraph-url = \"{}\"",
            server.url()
        ),
        "",
    );
    let err = w
        .cmd()
        .args(["resolve"])
        .expect_exit(2)
        .stderr_says("channel `stable-4.61`")
        .stderr();
    assert!(
        !err.contains("cannot reach") && !err.contains("insecure"),
        "{err}"
    );
    assert!(err.contains("matrix.toml:3:"), "{err}");
    w.cmd()
        .args(["releases", "stable-4.61"])
        .expect_exit(2)
        .run();

    // Known to the graph but offering nothing of its minor: the channels its nodes are in.
    let (dtk, _) = w.dtk(&DtkSpec::new(K_416), "amd64", Flavor::Docker);
    let p = PayloadSpec::new("4.16.2", Some(dtk))
        .push(&w.pusher, &w.repo("release"), None, "amd64", Flavor::Docker)
        .unwrap();
    let node = format!("{}/{}@{}", w.addr, w.repo("release"), p.digest);
    server.set(
        "stable-4.61",
        "amd64",
        graph::graph_json(&[("4.16.2", node.as_str())]),
    );
    let err = w.cmd().args(["resolve"]).expect_exit(2).stderr();
    assert!(says(&err, "`stable-4.16`") && says(&err, "4.61"), "{err}");
}
