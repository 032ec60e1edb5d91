//! The registry client against a server that fails on purpose: retries on 5xx and 429 (with
//! `Retry-After`), and content that does not match its digest, which must never be used.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use driver_matrix::domain::{Arch, Digest, ImageRef};
use driver_matrix::matrix::RegistrySettings;
use driver_matrix::registry::{Client, ClientOptions, Descriptor, RegistryError};
use driver_matrix_sandbox::faulty::{FaultServer, Reply};
use driver_matrix_sandbox::oci;

const MT: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn client(addr: &str) -> Client {
    // An empty credentials file keeps the machine's own out of the test.
    let dir = tempfile::tempdir().unwrap().keep();
    let authfile = dir.join("auth.json");
    std::fs::write(&authfile, "{}").unwrap();
    let mut registries = BTreeMap::new();
    registries.insert(
        addr.to_string(),
        RegistrySettings {
            mirror: None,
            insecure: true,
        },
    );
    Client::new(ClientOptions {
        registries,
        timeout: Duration::from_secs(5),
        retries: 3,
        authfile: Some(authfile),
        ..ClientOptions::default()
    })
    .unwrap()
}

fn manifest(config: &[u8], layer: &[u8]) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{MT}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":{}}}]}}"#,
        oci::sha256(config),
        config.len(),
        oci::sha256(layer),
        layer.len()
    )
    .into_bytes()
}

#[test]
fn retries_5xx_and_429_then_succeeds() {
    let s = FaultServer::start().unwrap();
    let body = manifest(b"{}", b"layer");
    s.route("/v2/a/b/manifests/t", Reply::ok(MT, &body));
    s.fail_next(Reply::status(503));
    s.fail_next(Reply::status(429).header("Retry-After", "1"));
    let c = client(s.addr());
    let r: ImageRef = format!("{}/a/b:t", s.addr()).parse().unwrap();
    let start = Instant::now();
    let m = c.manifest(&r, Arch::X86_64).unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(m.digest, Digest::sha256(&body));
    assert_eq!(s.requests().len(), 3);
}

#[test]
fn gives_up_after_the_retries() {
    let s = FaultServer::start().unwrap();
    for _ in 0..10 {
        s.fail_next(Reply::status(500));
    }
    let c = client(s.addr());
    let r: ImageRef = format!("{}/a/b:t", s.addr()).parse().unwrap();
    let e = c.manifest(&r, Arch::X86_64).unwrap_err();
    assert!(
        matches!(e, RegistryError::Status { status: 500, .. }),
        "{e}"
    );
    assert_eq!(s.requests().len(), 4, "one attempt and three retries");
}

#[test]
fn a_manifest_that_does_not_match_its_digest_is_refused() {
    let s = FaultServer::start().unwrap();
    let good = manifest(b"{}", b"layer");
    let bad = manifest(b"{ }", b"layer");
    let d = Digest::sha256(&good);
    s.route(&format!("/v2/a/b/manifests/{d}"), Reply::ok(MT, &bad));
    let c = client(s.addr());
    let r: ImageRef = format!("{}/a/b@{d}", s.addr()).parse().unwrap();
    let e = c.manifest(&r, Arch::X86_64).unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
    // A lying Docker-Content-Digest header is caught too.
    s.route(
        "/v2/a/b/manifests/t",
        Reply::ok(MT, &good).header("Docker-Content-Digest", &oci::sha256(b"other")),
    );
    let r: ImageRef = format!("{}/a/b:t", s.addr()).parse().unwrap();
    let e = c.manifest(&r, Arch::X86_64).unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
}

#[test]
fn a_blob_that_does_not_match_fails_at_its_end() {
    let s = FaultServer::start().unwrap();
    let real = b"the real layer".to_vec();
    let d: Digest = oci::sha256(&real).parse().unwrap();
    let mut tampered = real.clone();
    tampered[0] ^= 1;
    s.route(
        &format!("/v2/a/b/blobs/{d}"),
        Reply::ok("application/octet-stream", &tampered),
    );
    let c = client(s.addr());
    let r: ImageRef = format!("{}/a/b:t", s.addr()).parse().unwrap();
    let desc = Descriptor {
        media_type: "application/octet-stream".into(),
        digest: d,
        size: real.len() as u64,
    };
    let mut reader = c.blob_reader(&r, &desc).unwrap();
    let mut out = Vec::new();
    let e = reader.read_to_end(&mut out).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(!reader.verified());
}
