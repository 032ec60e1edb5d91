//! What a driver's modules must hold and who must have signed them: the expectations the
//! matrix states and `verify` checks, kept here so that neither depends on the other.

use der::{Decode, DecodePem, Encode};

/// What the images of one driver must hold.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// The driver's `modules` (none: every module in the kernel's directory, at least one).
    pub modules: Vec<String>,
    /// `signed = true`: every module checked must be signed.
    pub signing: Option<Signing>,
}

/// A driver's signing rule.
#[derive(Debug, Clone, Default)]
pub struct Signing {
    /// `signing-cert`: the certificate every module's signature must check against.
    pub cert: Option<Certificate>,
}

/// A certificate a driver's modules must be signed with.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub(crate) cert: x509_cert::Certificate,
    pub(crate) key: rsa::RsaPublicKey,
}

impl Certificate {
    /// Reads a PEM or DER X.509 certificate with an RSA key (what `sign-file` signs with).
    pub fn parse(bytes: &[u8]) -> Result<Certificate, String> {
        let cert = if bytes.starts_with(b"-----BEGIN") {
            x509_cert::Certificate::from_pem(bytes)
        } else {
            x509_cert::Certificate::from_der(bytes)
        }
        .map_err(|e| format!("not an X.509 certificate in PEM or DER: {e}"))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| e.to_string())?;
        let key = <rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(&spki)
            .map_err(|e| format!("its key is not an RSA key of up to 4096 bits: {e}"))?;
        Ok(Certificate { cert, key })
    }

    /// `CN=..., serial AB:CD`: how findings name it.
    pub fn describe(&self) -> String {
        let tbs = &self.cert.tbs_certificate;
        format!(
            "{}, serial {}",
            tbs.subject,
            colon_hex(unsigned(tbs.serial_number.as_bytes()))
        )
    }

    pub(crate) fn subject_key_id(&self) -> Option<Vec<u8>> {
        use x509_cert::ext::pkix::SubjectKeyIdentifier;
        let exts = self.cert.tbs_certificate.extensions.as_ref()?;
        let ext = exts
            .iter()
            .find(|e| e.extn_id == <SubjectKeyIdentifier as der::oid::AssociatedOid>::OID)?;
        let ski = SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes()).ok()?;
        Some(ski.0.as_bytes().to_vec())
    }
}

/// An unsigned big-endian integer without its leading zero bytes (one byte kept for zero).
pub(crate) fn unsigned(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    &bytes[zeros.min(bytes.len().saturating_sub(1))..]
}

/// `AB:CD:01`, as `modinfo` prints key ids.
pub fn colon_hex(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}
