//! `releases`: the versions a channel offers, from the update graph, read with the client every
//! run makes ([`super::client`]). The matrix is optional: it only supplies the graph's URL, the
//! default arch and the registries' settings.

use std::collections::BTreeMap;

use super::Options;
use crate::domain::Arch;
use crate::error::Result;
use crate::matrix::{DEFAULT_GRAPH_URL, Matrix};
use crate::release::graph::{self, Node};

/// The versions `channel` offers for `arch` (else the matrix's first arch, else `x86_64`),
/// oldest first.
pub fn versions(
    opts: &Options,
    matrix: Option<&Matrix>,
    channel: &str,
    arch: Option<Arch>,
) -> Result<Vec<Node>> {
    let (url, arch, registries) = match matrix {
        Some(m) => (
            m.openshift.graph_url.as_str(),
            arch.unwrap_or_else(|| m.openshift.arches.first().copied().unwrap_or(Arch::X86_64)),
            m.registries.clone(),
        ),
        None => (
            DEFAULT_GRAPH_URL,
            arch.unwrap_or(Arch::X86_64),
            BTreeMap::new(),
        ),
    };
    let client = super::client(opts, registries)?;
    Ok(graph::channel(&client, url, channel, arch)?)
}
