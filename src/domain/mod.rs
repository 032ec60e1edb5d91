//! Validated domain types. Raw strings from the matrix, the lockfile or a registry that name an
//! architecture, a digest, an image, a kernel or a version become one of these in exactly one
//! place. Names that are only names (a driver's, a RHEL version) stay strings, checked against
//! their grammar (`grammar.rs`) wherever they are read.

mod arch;
mod digest;
mod grammar;
mod image_ref;
mod kernel;
mod registry;
pub(crate) mod signing;
mod version;

pub use arch::Arch;
pub use digest::Digest;
pub use grammar::{
    STREAM_DEFAULT, STREAM_RHEL10, check_driver_name, check_machine_os, check_rhel, check_stream,
    check_tag, is_digits, is_lower_hex, is_module_name, is_secret_id, is_tag_char,
};
pub use image_ref::ImageRef;
pub use kernel::Kernel;
pub use registry::{Mirror, RegistrySettings};
pub use signing::{Certificate, Expect, Signing};
pub use version::{Version, VersionReq};

/// Why a string was not accepted as a domain value. The message is lowercase and names the
/// value; callers attach the location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    pub help: Option<String>,
}

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Implements `Serialize`/`Deserialize` through `Display`/`FromStr` for a domain type.
macro_rules! string_serde {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use string_serde;

/// The closest candidate to `input` by edit distance, if it is close enough to be a typo.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(input, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
