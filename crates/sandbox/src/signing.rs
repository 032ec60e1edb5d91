//! The demo's module signing key: an RSA key and a self-signed X.509 certificate made with
//! `openssl req` the first time the sandbox needs them, as a user makes a Secure Boot key to
//! enroll with `mokutil --import`. They live in the sandbox's state directory (git-ignored),
//! never in the repository, and are kept across runs: the images already built were signed
//! with them, and the build does not hash secrets, so a new key would not rebuild them.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The key and certificate file names inside the signing directory.
pub const KEY: &str = "signing.key";
pub const CERT: &str = "signing.crt";
/// The certificate's subject (and so issuer): what `modinfo` and `verify` report as `signer`.
pub const SIGNER: &str = "driver-matrix sandbox module signing";

/// The key pair in `dir`, made there with `openssl` when either file is missing.
pub fn ensure(dir: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let (key, cert) = (dir.join(KEY), dir.join(CERT));
    if key.is_file() && cert.is_file() {
        return Ok((key, cert));
    }
    std::fs::create_dir_all(dir)?;
    let (tmp_key, tmp_cert) = (dir.join("signing.key.tmp"), dir.join("signing.crt.tmp"));
    let out = Command::new("openssl")
        .args([
            "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
        ])
        .args(["-days", "36500", "-subj"])
        .arg(format!("/CN={SIGNER}"))
        .args(["-addext", "extendedKeyUsage=codeSigning"])
        .arg("-keyout")
        .arg(&tmp_key)
        .arg("-out")
        .arg(&tmp_cert)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running openssl: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::rename(&tmp_key, &key)?;
    std::fs::rename(&tmp_cert, &cert)?;
    Ok((key, cert))
}

/// `module` signed as `sign-file sha256 KEY CERT` signs it: OpenSSL's CMS signer with
/// sign-file's options (a detached SignedData without certificates or signed attributes, DER),
/// then `struct module_signature` and the magic. For tests that need signed modules without
/// a kernel tree at hand.
pub fn sign(key: &Path, cert: &Path, module: &[u8]) -> io::Result<Vec<u8>> {
    let dir = std::env::temp_dir().join(format!(
        "dm-sign-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir)?;
    let (input, out) = (dir.join("module.ko"), dir.join("module.p7s"));
    std::fs::write(&input, module)?;
    let status = Command::new("openssl")
        .args([
            "cms",
            "-sign",
            "-binary",
            "-noattr",
            "-nocerts",
            "-nosmimecap",
        ])
        .args(["-outform", "DER", "-md", "sha256", "-signer"])
        .arg(cert)
        .arg("-inkey")
        .arg(key)
        .arg("-in")
        .arg(&input)
        .arg("-out")
        .arg(&out)
        .status()?;
    let pkcs7 = std::fs::read(&out);
    std::fs::remove_dir_all(&dir)?;
    if !status.success() {
        return Err(io::Error::other("openssl cms -sign failed"));
    }
    let pkcs7 = pkcs7?;
    let mut signed = module.to_vec();
    signed.extend_from_slice(&pkcs7);
    // algo, hash, id_type (2: PKCS#7), signer_len, key_id_len, pad[3], sig_len (big-endian)
    signed.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
    let len = u32::try_from(pkcs7.len()).map_err(io::Error::other)?;
    signed.extend_from_slice(&len.to_be_bytes());
    signed.extend_from_slice(b"~Module signature appended~\n");
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_the_pair_once_and_keeps_it() {
        let dir = tempfile_dir();
        let (key, cert) = ensure(&dir).unwrap();
        let pem = std::fs::read_to_string(&cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        assert!(
            std::fs::read_to_string(&key)
                .unwrap()
                .contains("PRIVATE KEY")
        );
        ensure(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(&cert).unwrap(), pem);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dm-sandbox-signing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
