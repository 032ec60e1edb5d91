//! The appended signature of a kernel module, as `sign-file` writes it and the kernel checks it
//! under Secure Boot: the module's bytes, a PKCS#7 (CMS) `SignedData` in DER with the content
//! detached, the 12-byte `struct module_signature` (its last four bytes the signature's length,
//! big-endian) and the magic `~Module signature appended~\n`.
//!
//! What `modinfo` reports is read from the CMS `SignerInfo`: `signer` (the issuer's common name),
//! `sig_key` (the issuer's serial number, or the subject key identifier with `sign-file -k`) and
//! `sig_hashalgo`. The ASN.1 is decoded by RustCrypto's `cms` and `x509-cert` (on `der`), and a
//! signature is checked against a certificate with the `rsa` crate: no hand-written parser of
//! untrusted DER. Only the signature's own bytes are decoded, and they are capped at
//! [`SIG_MAX`].

#[cfg(test)]
use der::DecodePem;
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::Digest;

pub use crate::domain::Certificate;
use crate::domain::signing::{colon_hex, unsigned};

/// What `sign-file` appends after the signature.
pub const MAGIC: &[u8] = b"~Module signature appended~\n";
/// `struct module_signature`: algo, hash, id_type, signer_len, key_id_len, pad[3], sig_len.
const INFO_LEN: usize = 12;
/// `id_type` of a PKCS#7 signature, the only kind the kernel still accepts.
const PKCS7: u8 = 2;
/// Longest signature read; a PKCS#7 with an RSA-4096 signature and no certificates is under 1 KiB.
pub const SIG_MAX: usize = 64 << 10;

const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const RSA_OIDS: [&str; 6] = [
    "1.2.840.113549.1.1.1",
    "1.2.840.113549.1.1.5",
    "1.2.840.113549.1.1.11",
    "1.2.840.113549.1.1.12",
    "1.2.840.113549.1.1.13",
    "1.2.840.113549.1.1.14",
];

/// The hash algorithms a module may be signed with, by the name `modinfo` prints.
const HASHES: [(&str, &str); 5] = [
    ("1.3.14.3.2.26", "sha1"),
    ("2.16.840.1.101.3.4.2.4", "sha224"),
    ("2.16.840.1.101.3.4.2.1", "sha256"),
    ("2.16.840.1.101.3.4.2.2", "sha384"),
    ("2.16.840.1.101.3.4.2.3", "sha512"),
];

/// A module's signature: who signed it, and what is needed to check it against a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `signer`: the common name of the signing certificate's issuer (empty when the signature
    /// names its key by subject key identifier only).
    pub signer: String,
    /// `sig_key`: the certificate's serial number, or the subject key identifier, as colon hex.
    pub key_id: String,
    /// `sig_hashalgo`: `sha256`, `sha512`, ...
    pub hash: String,
    sid: Sid,
    /// The digest the signature value covers; `None` for a hash this tool does not compute.
    signed_digest: Option<Vec<u8>>,
    rsa: bool,
    value: Vec<u8>,
}

/// How the signature names its key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sid {
    IssuerSerial { issuer: Vec<u8>, serial: Vec<u8> },
    KeyId(Vec<u8>),
}

/// Why an appended signature could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("its signature trailer is cut short")]
    Truncated,
    #[error("its signature is of id type {0}, not PKCS#7 (2)")]
    NotPkcs7(u8),
    #[error("its signature claims {0} bytes: more than the module holds or any signature needs")]
    Length(u32),
    #[error("its PKCS#7 signature is malformed: {0}")]
    Malformed(String),
    #[error("its signature's message digest does not match the module")]
    DigestMismatch,
}

/// Why a signature does not show that the driver's certificate signed the module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("it is signed by another key than the driver's certificate ({0})")]
    OtherKey(String),
    #[error("its signature does not match the module's bytes")]
    BadSignature,
    #[error("its signature cannot be checked: {0}")]
    Unsupported(String),
}

/// The appended signature of `module`: `None` when there is none.
pub fn read(module: &[u8]) -> Option<Result<Signature, SignatureError>> {
    let rest = module.strip_suffix(MAGIC)?;
    Some(parse(rest))
}

fn parse(rest: &[u8]) -> Result<Signature, SignatureError> {
    let split = rest
        .len()
        .checked_sub(INFO_LEN)
        .ok_or(SignatureError::Truncated)?;
    let (body, info) = rest.split_at(split);
    if info[2] != PKCS7 {
        return Err(SignatureError::NotPkcs7(info[2]));
    }
    let sig_len = u32::from_be_bytes([info[8], info[9], info[10], info[11]]);
    let len = sig_len as usize;
    if len > SIG_MAX || len > body.len() {
        return Err(SignatureError::Length(sig_len));
    }
    let (content, pkcs7) = body.split_at(body.len() - len);
    decode(content, pkcs7)
}

fn malformed(e: impl std::fmt::Display) -> SignatureError {
    SignatureError::Malformed(e.to_string())
}

/// Reads the first `SignerInfo` of the PKCS#7 `der` that signs `content`.
fn decode(content: &[u8], der: &[u8]) -> Result<Signature, SignatureError> {
    let info = cms::content_info::ContentInfo::from_der(der).map_err(malformed)?;
    if info.content_type != SIGNED_DATA {
        return Err(malformed(format!(
            "its content type is {}, not signedData",
            info.content_type
        )));
    }
    let signed: cms::signed_data::SignedData = info.content.decode_as().map_err(malformed)?;
    let si = signed
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| malformed("it has no signer"))?;
    let oid = si.digest_alg.oid.to_string();
    let hash = HASHES
        .iter()
        .find(|(o, _)| *o == oid)
        .map_or(oid.clone(), |(_, name)| (*name).to_string());
    let content_digest = digest(&hash, content);
    let signed_digest = match &si.signed_attrs {
        None => content_digest,
        Some(attrs) => {
            let said = attrs
                .iter()
                .find(|a| a.oid == MESSAGE_DIGEST)
                .and_then(|a| a.values.iter().next())
                .and_then(|v| v.decode_as::<der::asn1::OctetString>().ok())
                .ok_or_else(|| malformed("its signed attributes hold no message digest"))?;
            if content_digest.is_some_and(|d| d != said.as_bytes()) {
                return Err(SignatureError::DigestMismatch);
            }
            digest(&hash, &attrs.to_der().map_err(malformed)?)
        }
    };
    let (signer, key_id, sid) = signer_of(&si.sid).map_err(malformed)?;
    Ok(Signature {
        signer,
        key_id,
        hash,
        sid,
        signed_digest,
        rsa: RSA_OIDS.contains(&si.signature_algorithm.oid.to_string().as_str()),
        value: si.signature.as_bytes().to_vec(),
    })
}

/// `(signer, key id, sid)` as `modinfo` shows the first two.
fn signer_of(sid: &cms::signed_data::SignerIdentifier) -> der::Result<(String, String, Sid)> {
    use cms::signed_data::SignerIdentifier as S;
    Ok(match sid {
        S::IssuerAndSerialNumber(ias) => {
            let serial = unsigned(ias.serial_number.as_bytes()).to_vec();
            (
                common_name(&ias.issuer),
                colon_hex(&serial),
                Sid::IssuerSerial {
                    issuer: ias.issuer.to_der()?,
                    serial,
                },
            )
        }
        S::SubjectKeyIdentifier(ski) => {
            let id = ski.0.as_bytes().to_vec();
            (String::new(), colon_hex(&id), Sid::KeyId(id))
        }
    })
}

/// The name's common name (`CN`), else the whole name as RFC 4514 text.
fn common_name(name: &x509_cert::name::Name) -> String {
    const CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == CN)
        .map_or_else(
            || name.to_string(),
            |atv| String::from_utf8_lossy(atv.value.value()).into_owned(),
        )
}

fn digest(hash: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match hash {
        "sha224" => sha2::Sha224::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha384" => sha2::Sha384::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

/// Whether the signature names this certificate's key.
fn named_by(cert: &Certificate, sid: &Sid) -> bool {
    let tbs = &cert.cert.tbs_certificate;
    match sid {
        Sid::IssuerSerial { issuer, serial } => {
            tbs.issuer.to_der().is_ok_and(|i| &i == issuer)
                && unsigned(tbs.serial_number.as_bytes()) == serial.as_slice()
        }
        Sid::KeyId(id) => cert.subject_key_id().as_ref() == Some(id),
    }
}

impl Signature {
    /// Checks that `cert`'s key made this signature over the module it was read from.
    pub fn check(&self, cert: &Certificate) -> Result<(), Mismatch> {
        if !named_by(cert, &self.sid) {
            return Err(Mismatch::OtherKey(cert.describe()));
        }
        if !self.rsa {
            return Err(Mismatch::Unsupported("it is not an RSA signature".into()));
        }
        let Some(digest) = &self.signed_digest else {
            return Err(Mismatch::Unsupported(format!(
                "hash `{}` is not one of sha224, sha256, sha384, sha512",
                self.hash
            )));
        };
        let scheme = match self.hash.as_str() {
            "sha224" => rsa::Pkcs1v15Sign::new::<sha2::Sha224>(),
            "sha256" => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            "sha384" => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            _ => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        };
        cert.key
            .verify(scheme, digest, &self.value)
            .map_err(|_| Mismatch::BadSignature)
    }

    /// Bytes it keeps, for the scanner's cap on what it holds between layers.
    pub fn weight(&self) -> usize {
        let sid = match &self.sid {
            Sid::IssuerSerial { issuer, serial } => issuer.len() + serial.len(),
            Sid::KeyId(id) => id.len(),
        };
        self.signer.len() + self.key_id.len() + self.hash.len() + sid + self.value.len() + 64 + 64
    }
}

#[cfg(test)]
pub(crate) mod tests;
