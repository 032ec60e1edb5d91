//! The Cincinnati update graph: which versions a channel offers, with their payload digests.

use serde::Deserialize;

use super::ReleaseError;
use crate::domain::{Arch, ImageRef, Version};
use crate::registry::Client;

/// One release of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub version: Version,
    /// The payload by digest, as the graph names it.
    pub payload: Option<ImageRef>,
}

#[derive(Deserialize)]
struct Graph {
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
struct RawNode {
    version: String,
    #[serde(default)]
    payload: Option<String>,
}

/// `GET <graph-url>?channel=<channel>&arch=<goarch>`, every node sorted by version (the graph
/// lists them in no stable order). Nodes whose version is not a release version are skipped;
/// a payload that is not a digest reference is dropped (the tag is used instead).
pub fn channel(
    client: &Client,
    graph_url: &str,
    channel: &str,
    arch: Arch,
) -> Result<Vec<Node>, ReleaseError> {
    let sep = if graph_url.contains('?') { '&' } else { '?' };
    let url = format!("{graph_url}{sep}channel={channel}&arch={}", arch.goarch());
    let body = client.get_json(&url).map_err(|error| ReleaseError::Graph {
        channel: channel.to_string(),
        arch,
        error: Box::new(error),
    })?;
    parse(channel, &body)
}

pub fn parse(channel: &str, body: &[u8]) -> Result<Vec<Node>, ReleaseError> {
    let graph: Graph = serde_json::from_slice(body).map_err(|e| ReleaseError::GraphFormat {
        channel: channel.to_string(),
        message: e.to_string(),
    })?;
    let mut nodes: Vec<Node> = graph
        .nodes
        .into_iter()
        .filter_map(|n| {
            let version = n.version.parse().ok()?;
            let payload = n
                .payload
                .and_then(|p| p.parse::<ImageRef>().ok())
                .filter(|p| p.digest().is_some());
            Some(Node { version, payload })
        })
        .collect();
    nodes.sort_by(|a, b| a.version.cmp(&b.version));
    nodes.dedup_by(|a, b| a.version == b.version);
    Ok(nodes)
}

/// The newest `n` nodes of minor stream `minor` (a channel also lists the previous minor).
pub fn latest(nodes: &[Node], minor: (u64, u64), n: usize) -> Vec<Node> {
    let own: Vec<&Node> = nodes
        .iter()
        .filter(|x| x.version.minor_stream() == minor)
        .collect();
    own[own.len().saturating_sub(n)..]
        .iter()
        .map(|x| (*x).clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_of_the_own_minor_by_semver() {
        let body = br#"{"nodes":[
            {"version":"4.16.10","payload":"quay.io/openshift-release-dev/ocp-release@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
            {"version":"4.15.40","payload":"x"},
            {"version":"4.16.9"},
            {"version":"4.16.2"}],"edges":[]}"#;
        let nodes = parse("stable-4.16", body).unwrap();
        let got: Vec<String> = latest(&nodes, (4, 16), 2)
            .iter()
            .map(|n| n.version.to_string())
            .collect();
        assert_eq!(got, ["4.16.9", "4.16.10"]);
        assert!(latest(&nodes, (4, 16), 2)[1].payload.is_some());
        assert_eq!(latest(&nodes, (4, 17), 2), vec![]);
    }
}
