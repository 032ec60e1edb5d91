//! TLS as containers/image does it, against a real docker-registry serving HTTPS on loopback
//! with a certificate from a CA generated here: a host that is not `insecure` is verified with
//! the CA from `--cert-dir` or `/etc/containers/certs.d/HOST/`, an `insecure` one is read over
//! HTTPS without verification (and a plain-HTTP insecure host still works, see the other tests).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;
use driver_matrix_sandbox::registry::Options;
use driver_matrix_sandbox::{DtkSpec, Flavor, PayloadSpec, Registry};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.crt`) and a certificate for 127.0.0.1 it signed (`server.crt`, `server.key`).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=driver-matrix test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName = IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    );
    (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

/// A release pushed over plain HTTP to one registry and served over HTTPS by a second one on
/// the same storage; the payload names its DTK on the HTTPS registry too.
struct Setup {
    w: World,
    _plain: Registry,
    tls: Registry,
    ca: PathBuf,
    _certs: tempfile::TempDir,
}

fn setup(name: &str) -> Setup {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    let storage = certs.path().join("storage");
    let plain = Registry::start(Options {
        storage: Some(storage.clone()),
        ..Options::default()
    })
    .unwrap();
    let tls = Registry::start(Options {
        storage: Some(storage),
        tls: Some((cert, key)),
        ..Options::default()
    })
    .unwrap();
    let w = World::on(plain.addr(), name, None);
    let (dtk, _) = w.dtk(&DtkSpec::new(K_414), "amd64", Flavor::Oci);
    let dtk = dtk.replace(plain.addr(), tls.addr());
    w.payload(
        &PayloadSpec::new("4.14.12", Some(dtk)),
        "x86_64",
        "amd64",
        Flavor::Oci,
    );
    Setup {
        w,
        _plain: plain,
        tls,
        ca,
        _certs: certs,
    }
}

impl Setup {
    fn matrix(&self, insecure: bool) {
        self.w.matrix_raw(&format!(
            "[openshift]\npayload-repo = \"{}/{}\"\nreleases = [\"4.14.12\"]\n\n[registries.\"{}\"]\ninsecure = {insecure}\n",
            self.tls.addr(),
            self.w.repo("release"),
            self.tls.addr(),
        ));
    }
}

#[test]
fn a_host_that_is_not_insecure_is_verified_with_its_ca_from_cert_dir() {
    let s = setup("tls-ca");
    s.matrix(false);
    // No CA: the certificate is refused, and nothing falls back to plain HTTP.
    let err = s.w.cmd().args(["resolve"]).expect_exit(4).stderr();
    assert!(says(&err, &format!("https://{}", s.tls.addr())), "{err}");
    assert!(!s.w.path("matrix.lock").exists());
    // The CA in a directory given with --cert-dir (only `*.crt` files count).
    let dir = s.w.path("certs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&s.ca, dir.join("ca.crt")).unwrap();
    std::fs::write(dir.join("README"), "not a certificate").unwrap();
    s.w.cmd()
        .args(["--cert-dir", dir.to_str().unwrap(), "resolve"])
        .run();
    assert!(s.w.lock().contains(K_414));
}

/// Removes a directory this test made under /etc/containers/certs.d, whatever happens.
struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_ca_is_read_from_etc_containers_certs_d_host() {
    let s = setup("tls-certs-d");
    s.matrix(false);
    let dir = Path::new("/etc/containers/certs.d").join(s.tls.addr());
    if std::fs::create_dir_all(&dir).is_err() {
        eprintln!("skipped: cannot write {} (not root)", dir.display());
        return;
    }
    let _remove = Remove(dir.clone());
    std::fs::copy(&s.ca, dir.join("ca.crt")).unwrap();
    s.w.cmd().args(["resolve"]).run();
    assert!(s.w.lock().contains(K_414));
}

#[test]
fn an_insecure_host_is_read_over_https_without_verification() {
    let s = setup("tls-insecure");
    s.matrix(true);
    s.w.cmd().args(["resolve"]).run();
    assert!(s.w.lock().contains(K_414));
    // It really went over TLS: the HTTPS registry logged the requests.
    assert!(s.tls.log().contains("/v2/"), "{}", s.tls.log());
}
