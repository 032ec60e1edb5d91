//! Content digests (`sha256:<hex>`).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use super::{ParseError, string_serde};

/// A `sha256:` digest of 64 lowercase hex digits, the only algorithm registries use in practice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    pub fn sha256(bytes: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// The digest of a finished SHA-256.
    pub fn from_sha256_bytes(bytes: &[u8; 32]) -> Self {
        // By hand rather than `format!` and `hex::encode`: a plan of 100,000 jobs makes as many.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(7 + 64);
        s.push_str("sha256:");
        for b in bytes {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        Digest(s)
    }

    pub fn from_sha256_hex(hex: &str) -> Result<Self, ParseError> {
        format!("sha256:{hex}").parse()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part, without `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && super::is_lower_hex(hex));
        if ok {
            Ok(Digest(s.to_string()))
        } else {
            Err(ParseError::new(format!("`{s}` is not a sha256 digest"))
                .with_help("expected `sha256:` followed by 64 lowercase hex digits"))
        }
    }
}

string_serde!(Digest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_hash_spells_as_the_hex_of_its_bytes() {
        for input in [&b""[..], b"hello", &[0xff; 100]] {
            let bytes: [u8; 32] = Sha256::digest(input).into();
            assert_eq!(Digest::from_sha256_bytes(&bytes), Digest::sha256(input));
        }
        assert_eq!(
            Digest::from_sha256_bytes(&[0xab; 32]).as_str(),
            format!("sha256:{}", "ab".repeat(32))
        );
    }

    #[test]
    fn round_trips_and_validates() {
        let d = Digest::sha256(b"hello");
        assert_eq!(
            d.as_str(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(d.as_str().parse::<Digest>().unwrap(), d);
        assert!("sha256:ABC".parse::<Digest>().is_err());
        assert!(
            "md5:2cf24dba5fb0a30e26e83b2ac5b9e29e"
                .parse::<Digest>()
                .is_err()
        );
        assert!(d.as_str().to_uppercase().parse::<Digest>().is_err());
    }
}
