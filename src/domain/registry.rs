//! Per-host registry settings: a read mirror and whether the host is insecure. The matrix's
//! `[registries."HOST"]` tables fill them in; the registry client and buildah's
//! registries.conf read them.

/// Settings for one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Reads of this host go to this mirror instead.
    pub mirror: Option<Mirror>,
    /// Plain HTTP and no TLS verification for this host.
    pub insecure: bool,
}

/// Where reads of a mirrored host go: `host[:port]` and an optional namespace prepended to paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub host: String,
    pub namespace: Option<String>,
}

impl std::fmt::Display for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}", self.host),
            None => f.write_str(&self.host),
        }
    }
}
