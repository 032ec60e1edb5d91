use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::domain::Arch;
use crate::matrix::Driver;
use crate::plan::Job;
use crate::template::TagTemplate;

fn fixture() -> (Job, Driver, BTreeMap<String, RegistrySettings>) {
    let dtk = format!("127.0.0.1:5000/ocp/dtk@sha256:{}", "d".repeat(64));
    let job = Job {
        dtk: dtk.parse().unwrap(),
        image: "quay.io/acme/hello-kmod:5.14.0-284.52.1.el9_2.x86_64"
            .parse()
            .unwrap(),
        driver_args: std::sync::Arc::new([("VERSION".to_string(), "1.0 beta".to_string())].into()),
        ..Job::example()
    };
    let driver = Driver {
        name: "hello-kmod".into(),
        context: PathBuf::from("/src/drivers/hello-kmod"),
        containerfile: "build/Containerfile".into(),
        image: "quay.io/acme/hello-kmod".parse().unwrap(),
        tag: TagTemplate::parse("${KERNEL_FULL_VERSION}", ["VERSION"]).unwrap(),
        modules: vec!["hello".into()],
        build_args: [("VERSION".to_string(), "1.0 beta".to_string())].into(),
        secrets: [(
            "signing-key".to_string(),
            PathBuf::from("/src/keys/signing.priv"),
        )]
        .into(),
        openshift: None,
        arches: vec![Arch::X86_64],
        rt: false,
        signing: None,
        kmm: Default::default(),
    };
    let registries = [(
        "127.0.0.1:5000".to_string(),
        RegistrySettings {
            mirror: None,
            insecure: true,
        },
    )]
    .into();
    (job, driver, registries)
}

fn lines(inv: &Invocation) -> String {
    let mut out = format!("{}\n", inv.program.to_string_lossy());
    for a in &inv.args {
        crate::render::append!(out, "  {}\n", a.to_string_lossy());
    }
    out
}

#[test]
fn build_and_push_command_lines() {
    let (job, driver, registries) = fixture();
    let buildah = Buildah {
        authfile: Some(PathBuf::from("/run/containers/0/auth.json")),
        ..Buildah::default()
    };
    let spec = Spec {
        job: &job,
        driver: &driver,
        registries: &registries,
        buildah: &buildah,
        digestfile: Path::new("/cache/logs/run/hello-kmod.digest"),
    };
    insta::assert_snapshot!("build", lines(&build(&spec)));
    insta::assert_snapshot!("push", lines(&push(&spec)));
    insta::assert_snapshot!("display", build(&spec).display());
}

#[test]
fn tls_verification_is_never_turned_off_for_the_whole_build() {
    let (mut job, driver, registries) = fixture();
    let buildah = Buildah {
        cert_dir: Some(PathBuf::from("/etc/pki/registry")),
        ..Buildah::default()
    };
    let check = |job: &Job| {
        let spec = Spec {
            job,
            driver: &driver,
            registries: &registries,
            buildah: &buildah,
            digestfile: Path::new("/d"),
        };
        for inv in [build(&spec), push(&spec)] {
            let line = inv.display();
            // Insecure hosts are insecure through registries.conf, for that host only.
            assert!(!line.contains("--tls-verify"), "{line}");
            assert!(line.contains(" --cert-dir /etc/pki/registry "), "{line}");
        }
    };
    // The DTK is on the insecure host, then the target is.
    check(&job);
    job.image = "127.0.0.1:5000/acme/hello-kmod:t".parse().unwrap();
    job.dtk = format!("quay.io/ocp/dtk@sha256:{}", "d".repeat(64))
        .parse()
        .unwrap();
    check(&job);
}

#[test]
fn the_context_ignore_file_is_given_to_its_driver_only() {
    let (job, driver, registries) = fixture();
    let mut buildah = Buildah::default();
    let line = |buildah: &Buildah| {
        build(&Spec {
            job: &job,
            driver: &driver,
            registries: &registries,
            buildah,
            digestfile: Path::new("/d"),
        })
        .display()
    };
    assert!(!line(&buildah).contains("--ignorefile"));
    buildah
        .ignorefiles
        .insert("other".into(), PathBuf::from("/c/ignore/o.containerignore"));
    assert!(!line(&buildah).contains("--ignorefile"));
    buildah.ignorefiles.insert(
        driver.name.clone(),
        PathBuf::from("/c/ignore/h.containerignore"),
    );
    let line = line(&buildah);
    assert!(
        line.contains(" --ignorefile /c/ignore/h.containerignore "),
        "{line}"
    );
}

#[test]
fn environment_and_timestamp_pass_through() {
    let (job, driver, registries) = fixture();
    let buildah = Buildah {
        timestamp: Some(0),
        env: vec![("CONTAINERS_REGISTRIES_CONF".into(), "/tmp/r.conf".into())],
        ..Buildah::default()
    };
    let spec = Spec {
        job: &job,
        driver: &driver,
        registries: &registries,
        buildah: &buildah,
        digestfile: Path::new("/d"),
    };
    let inv = build(&spec);
    assert!(
        inv.display()
            .starts_with("CONTAINERS_REGISTRIES_CONF=/tmp/r.conf buildah build")
    );
    assert!(inv.display().contains(" --timestamp 0 "));
    let cmd = inv.command();
    assert_eq!(cmd.get_envs().count(), 1);
}

#[test]
fn quoting() {
    assert_eq!(quote(OsStr::new("a=b")), "a=b");
    assert_eq!(quote(OsStr::new("1.0 beta")), "'1.0 beta'");
    assert_eq!(quote(OsStr::new("it's")), r"'it'\''s'");
    assert_eq!(quote(OsStr::new("")), "''");
    assert_eq!(quote(OsStr::new("a\x1b[2J'b\\")), r"$'a\x1b[2J\'b\\'");
    assert_eq!(quote(OsStr::new("\u{9b}")), r"$'\xc2\x9b'");
}

fn secret_values(inv: &Invocation) -> Vec<String> {
    inv.args
        .windows(2)
        .filter(|w| w[0] == "--secret")
        .map(|w| w[1].to_string_lossy().into_owned())
        .collect()
}

#[test]
fn command_line_secrets_override_and_supply_the_drivers() {
    let (job, driver, registries) = fixture();
    let buildah = Buildah {
        secrets: [
            ("signing-key".to_string(), PathBuf::from("/run/ci/key.priv")),
            ("token".to_string(), PathBuf::from("/run/ci/token")),
        ]
        .into(),
        ..Buildah::default()
    };
    let spec = Spec {
        job: &job,
        driver: &driver,
        registries: &registries,
        buildah: &buildah,
        digestfile: Path::new("/d"),
    };
    assert_eq!(
        secret_values(&build(&spec)),
        [
            "id=signing-key,src=/run/ci/key.priv",
            "id=token,src=/run/ci/token"
        ]
    );
}

#[test]
fn a_command_line_secret_is_one_file_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.priv");
    std::fs::write(&key, "k").unwrap();
    let ok: CliSecret = format!("signing-key={}", key.display()).parse().unwrap();
    assert_eq!(ok.id, "signing-key");
    assert_eq!(ok.path, key.canonicalize().unwrap());
    let comma = dir.path().join("k,env=GITHUB_TOKEN");
    std::fs::write(&comma, "k").unwrap();
    for bad in [
        "no-equals".to_string(),
        format!("a,b={}", key.display()),
        format!("={}", key.display()),
        format!("k={}", comma.display()),
        format!("k={}", dir.path().join("missing").display()),
        format!("k={}", dir.path().display()),
        "k=".to_string(),
    ] {
        assert!(bad.parse::<CliSecret>().is_err(), "{bad} accepted");
    }
}
