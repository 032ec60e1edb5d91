//! `signed` and `signing-cert` of a `[[driver]]`: whether `verify --deep` (and the read-back of
//! `build` and `collect`) requires every module of the driver's images to carry a signature, and
//! the certificate (a file inside the matrix directory, PEM or DER) the signatures must check
//! against. The certificate is read and parsed
//! when the matrix loads, so a wrong path or a file that is no RSA certificate is reported with
//! the rest of the matrix's problems.

use std::io::Read;
use std::path::Path;

use toml::Spanned;

use super::diagnostic::Problem;
use crate::domain::{Certificate, Signing};

/// Largest certificate file read (real ones are one or two KiB).
const CERT_MAX: u64 = 64 << 10;

/// The driver's signing rule: `None` unless `signed = true`.
pub fn validate(
    root: &Path,
    signed: Option<&Spanned<bool>>,
    cert: Option<&Spanned<String>>,
    problems: &mut Vec<Problem>,
) -> Option<Signing> {
    let required = signed.is_some_and(|s| *s.get_ref());
    let cert = cert.and_then(|c| match certificate(root, c.get_ref()) {
        Ok(cert) => Some(cert),
        Err((message, label)) => {
            problems.push(Problem::new(message).label(c.span(), label).help(
                "`signing-cert` names the public certificate of the signing key, a PEM or DER file inside the matrix file's directory",
            ));
            None
        }
    });
    match (required, cert) {
        (true, cert) => Some(Signing { cert }),
        (false, Some(_)) => {
            let c = signed.map_or(0..0, Spanned::span);
            let mut p =
                Problem::new("`signing-cert` is set, but the driver does not have `signed = true`")
                    .help("add `signed = true` to the driver, or remove `signing-cert`");
            if !c.is_empty() {
                p = p.label(c, "set to false");
            }
            problems.push(p);
            None
        }
        (false, None) => None,
    }
}

/// Reads and parses the certificate at `text`, relative to `root` and resolved inside it.
fn certificate(root: &Path, text: &str) -> Result<Certificate, (String, &'static str)> {
    if Path::new(text).is_absolute() {
        return Err((
            format!("signing certificate `{text}` is absolute"),
            "outside the matrix directory",
        ));
    }
    let resolved = root.join(text).canonicalize().map_err(|e| {
        (
            format!("signing certificate `{text}`: {e}"),
            "cannot be read",
        )
    })?;
    if !resolved.starts_with(root) {
        return Err((
            format!(
                "signing certificate `{text}` resolves to `{}`, outside the matrix file's directory",
                resolved.display()
            ),
            "escapes the matrix directory",
        ));
    }
    let file = std::fs::File::open(&resolved).map_err(|e| {
        (
            format!("signing certificate `{text}`: {e}"),
            "cannot be read",
        )
    })?;
    let mut bytes = Vec::new();
    file.take(CERT_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            (
                format!("signing certificate `{text}`: {e}"),
                "cannot be read",
            )
        })?;
    if bytes.len() as u64 > CERT_MAX {
        return Err((
            format!("signing certificate `{text}` is over 64 KiB"),
            "not a certificate",
        ));
    }
    Certificate::parse(&bytes).map_err(|e| {
        (
            format!("signing certificate `{text}`: {e}"),
            "not an RSA certificate",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Problems of a matrix whose one driver has `keys`, in a directory with a context, a
    /// certificate (`keys/signing.crt`) and a file that is no certificate.
    fn problems(keys: &str) -> Result<Option<Signing>, String> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("ctx")).unwrap();
        std::fs::write(root.join("ctx/Containerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir_all(root.join("keys")).unwrap();
        let (ours, _) = crate::verify::signature::tests::keys();
        std::fs::copy(&ours.cert, root.join("keys/signing.crt")).unwrap();
        std::fs::write(root.join("keys/notes.txt"), "hello").unwrap();
        let text = format!(
            "[openshift]\nreleases = [\"4.15.1\"]\n\n[[driver]]\nname = \"d\"\ncontext = \"ctx\"\n\
             image = \"quay.io/acme/d\"\n{keys}\n"
        );
        match crate::matrix::parse(&root.join("matrix.toml"), &root, text) {
            Ok(l) => Ok(l.matrix.drivers[0].signing.clone()),
            Err(e) => Err(e
                .problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")),
        }
    }

    #[test]
    fn signed_and_its_certificate_are_read() {
        assert!(problems("").unwrap().is_none());
        assert!(problems("signed = false").unwrap().is_none());
        assert!(problems("signed = true").unwrap().unwrap().cert.is_none());
        let with = problems("signed = true\nsigning-cert = \"keys/signing.crt\"");
        assert!(with.unwrap().unwrap().cert.is_some());
    }

    #[test]
    fn a_wrong_certificate_is_a_matrix_error() {
        for (keys, says) in [
            (
                "signed = true\nsigning-cert = \"keys/notes.txt\"",
                "not an X.509 certificate",
            ),
            (
                "signed = true\nsigning-cert = \"keys/none.crt\"",
                "keys/none.crt",
            ),
            ("signed = true\nsigning-cert = \"../x.crt\"", "x.crt"),
            (
                "signed = true\nsigning-cert = \"/etc/passwd\"",
                "is absolute",
            ),
            (
                "signing-cert = \"keys/signing.crt\"",
                "does not have `signed = true`",
            ),
            ("signed = \"yes\"", "signed"),
        ] {
            let err = problems(keys).unwrap_err();
            assert!(err.contains(says), "{keys}: {err}");
        }
    }
}
