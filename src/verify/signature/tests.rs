//! Signatures made by OpenSSL's CMS signer, the one `sign-file` calls, with the same options
//! (`-binary -noattr -nocerts -nosmimecap`, `-keyid` for `sign-file -k`), and appended as
//! `sign-file` appends them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::*;
use crate::verify::modinfo::tests::fake_module;

/// A key and self-signed certificate made by `openssl req`, as a user makes a signing key.
pub struct Key {
    _dir: tempfile::TempDir,
    pub key: PathBuf,
    pub cert: PathBuf,
}

impl Key {
    pub fn new(cn: &str) -> Key {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (
            dir.path().join("signing.key"),
            dir.path().join("signing.crt"),
        );
        run(openssl(&[
            "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
        Key {
            _dir: dir,
            key,
            cert,
        }
    }

    pub fn certificate(&self) -> Certificate {
        Certificate::parse(&std::fs::read(&self.cert).unwrap()).unwrap()
    }

    /// `module` signed as `sign-file HASH KEY CERT` (with `-k` when `keyid`) signs it;
    /// `attrs` keeps OpenSSL's signed attributes, which `sign-file` leaves out.
    pub fn sign_with(&self, module: &[u8], hash: &str, keyid: bool, attrs: bool) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let (input, out) = (dir.path().join("m.ko"), dir.path().join("m.p7s"));
        std::fs::write(&input, module).unwrap();
        let mut cmd = openssl(&["cms", "-sign", "-binary", "-nocerts", "-nosmimecap"]);
        cmd.args(["-outform", "DER", "-md", hash]);
        if !attrs {
            cmd.arg("-noattr");
        }
        if keyid {
            cmd.arg("-keyid");
        }
        cmd.arg("-signer")
            .arg(&self.cert)
            .arg("-inkey")
            .arg(&self.key);
        run(cmd.arg("-in").arg(&input).arg("-out").arg(&out));
        append(module, &std::fs::read(&out).unwrap())
    }

    pub fn sign(&self, module: &[u8]) -> Vec<u8> {
        self.sign_with(module, "sha256", false, false)
    }

    /// The certificate's serial as `modinfo` prints it.
    pub fn serial(&self) -> String {
        let out = run(openssl(&["x509", "-noout", "-serial", "-in"]).arg(&self.cert));
        let hex = out.trim().strip_prefix("serial=").unwrap().to_string();
        let bytes = hex::decode(if hex.len() % 2 == 1 {
            format!("0{hex}")
        } else {
            hex
        })
        .unwrap();
        colon_hex(unsigned(&bytes))
    }
}

/// Module bytes, the PKCS#7, `struct module_signature` and the magic, as `sign-file` writes them.
pub fn append(module: &[u8], pkcs7: &[u8]) -> Vec<u8> {
    let mut out = module.to_vec();
    out.extend_from_slice(pkcs7);
    out.extend_from_slice(&[0, 0, PKCS7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&u32::try_from(pkcs7.len()).unwrap().to_be_bytes());
    out.extend_from_slice(MAGIC);
    out
}

/// Two keys for the whole test run: the driver's, and someone else's.
pub fn keys() -> &'static (Key, Key) {
    static KEYS: OnceLock<(Key, Key)> = OnceLock::new();
    KEYS.get_or_init(|| (Key::new("acme driver signing"), Key::new("someone else")))
}

fn openssl(args: &[&str]) -> Command {
    let mut c = Command::new("openssl");
    c.args(args);
    c
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .expect("running openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn module() -> Vec<u8> {
    fake_module(b"name=hello\0vermagic=6.1.0-50-amd64 SMP preempt mod_unload\0")
}

#[test]
fn reads_signer_key_id_and_hash_as_modinfo_shows_them() {
    let (ours, _) = keys();
    let signed = ours.sign(&module());
    let sig = read(&signed).unwrap().unwrap();
    assert_eq!(sig.signer, "acme driver signing");
    assert_eq!(sig.key_id, ours.serial());
    assert_eq!(sig.hash, "sha256");
    assert_eq!(sig.check(&ours.certificate()), Ok(()));
    // The module itself still reads: the signature only follows it.
    assert_eq!(
        crate::verify::modinfo::read(&signed).unwrap().kernel(),
        "6.1.0-50-amd64"
    );
    assert_eq!(read(&module()), None);
}

#[test]
fn a_key_id_signature_and_other_hashes_check_too() {
    let (ours, _) = keys();
    let by_keyid = ours.sign_with(&module(), "sha512", true, false);
    let sig = read(&by_keyid).unwrap().unwrap();
    assert_eq!((sig.signer.as_str(), sig.hash.as_str()), ("", "sha512"));
    assert_eq!(
        sig.key_id.len(),
        20 * 3 - 1,
        "a SHA-1 key id: {}",
        sig.key_id
    );
    assert_eq!(sig.check(&ours.certificate()), Ok(()));
    let with_attrs = ours.sign_with(&module(), "sha384", false, true);
    let sig = read(&with_attrs).unwrap().unwrap();
    assert_eq!(sig.check(&ours.certificate()), Ok(()));
}

#[test]
fn a_changed_module_or_signature_does_not_check() {
    let (ours, _) = keys();
    let cert = ours.certificate();
    let signed = ours.sign(&module());
    let mut body = signed.clone();
    body[100] ^= 1;
    let sig = read(&body).unwrap().unwrap();
    assert_eq!(sig.check(&cert), Err(Mismatch::BadSignature));
    // The RSA value is the last thing in the PKCS#7, just before the trailer.
    let mut value = signed.clone();
    let at = value.len() - MAGIC.len() - INFO_LEN - 5;
    value[at] ^= 0x40;
    let sig = read(&value).unwrap().unwrap();
    assert_eq!(sig.check(&cert), Err(Mismatch::BadSignature));
    // With signed attributes, a changed module no longer matches the signed digest.
    let mut attrs = ours.sign_with(&module(), "sha256", false, true);
    attrs[100] ^= 1;
    assert_eq!(read(&attrs), Some(Err(SignatureError::DigestMismatch)));
}

#[test]
fn another_key_does_not_check() {
    let (ours, theirs) = keys();
    let signed = theirs.sign(&module());
    let sig = read(&signed).unwrap().unwrap();
    assert_eq!(sig.signer, "someone else");
    let err = sig.check(&ours.certificate()).unwrap_err();
    assert!(
        matches!(&err, Mismatch::OtherKey(c) if c.contains("acme driver signing")),
        "{err}"
    );
    // The same issuer and serial on another key is caught by the signature itself.
    let forged = Certificate {
        key: theirs.certificate().key,
        ..ours.certificate()
    };
    assert_eq!(
        read(&ours.sign(&module())).unwrap().unwrap().check(&forged),
        Err(Mismatch::BadSignature)
    );
}

#[test]
fn broken_trailers_are_named() {
    assert_eq!(read(MAGIC), Some(Err(SignatureError::Truncated)));
    let mut not_pkcs7 = append(&module(), b"xx");
    let at = not_pkcs7.len() - MAGIC.len() - INFO_LEN + 2;
    not_pkcs7[at] = 1;
    assert_eq!(read(&not_pkcs7), Some(Err(SignatureError::NotPkcs7(1))));
    let mut long = append(b"tiny", b"xx");
    let at = long.len() - MAGIC.len() - 4;
    long[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(read(&long), Some(Err(SignatureError::Length(u32::MAX))));
    assert!(matches!(
        read(&append(&module(), b"not DER at all")),
        Some(Err(SignatureError::Malformed(_)))
    ));
}

#[test]
fn certificates_are_read_from_pem_and_der() {
    let (ours, _) = keys();
    let pem = std::fs::read(&ours.cert).unwrap();
    let der = x509_cert::Certificate::from_pem(&pem)
        .unwrap()
        .to_der()
        .unwrap();
    let described = Certificate::parse(&der).unwrap().describe();
    assert_eq!(described, Certificate::parse(&pem).unwrap().describe());
    assert!(described.starts_with("CN=acme driver signing, serial "));
    assert!(Certificate::parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
    assert!(Path::new(&ours.key).exists());
}
