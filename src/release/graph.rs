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
    #[serde(default)]
    metadata: std::collections::BTreeMap<String, String>,
}

/// The node metadata key listing the channels a release is in.
const CHANNELS_KEY: &str = "io.openshift.upgrades.graph.release.channels";

/// A channel's nodes, and every channel they say they are in (sorted): what an error about a
/// channel that offers nothing can suggest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub nodes: Vec<Node>,
    pub channels: Vec<String>,
}

/// `GET <graph-url>?channel=<channel>&arch=<goarch>`, every node sorted by version (the graph
/// lists them in no stable order). Nodes whose version is not a release version are skipped;
/// a payload that is not a digest reference is dropped (the tag is used instead). A graph
/// that says it has no such channel (HTTP 400 or 404), or answers without a single node, is
/// [`ReleaseError::UnknownChannel`]: a matrix error, not a network failure.
pub fn channel(
    client: &Client,
    graph_url: &str,
    channel: &str,
    arch: Arch,
) -> Result<Vec<Node>, ReleaseError> {
    Ok(channel_answer(client, graph_url, channel, arch)?.nodes)
}

/// [`channel`], with the channels the nodes name.
pub fn channel_answer(
    client: &Client,
    graph_url: &str,
    channel: &str,
    arch: Arch,
) -> Result<Answer, ReleaseError> {
    let sep = if graph_url.contains('?') { '&' } else { '?' };
    let url = format!("{graph_url}{sep}channel={channel}&arch={}", arch.goarch());
    let unknown = |said: String| {
        ReleaseError::UnknownChannel(Box::new(super::UnknownChannel {
            channel: channel.to_string(),
            arch,
            url: url.clone(),
            said,
            help: format!(
                "check the channel's name (like `stable-4.16`); `driver-matrix releases {channel}` asks the same graph"
            ),
            matrix: None,
            span: None,
        }))
    };
    let body = match client.get_json(&url) {
        Ok(body) => body,
        Err(crate::registry::RegistryError::NotFound { said, .. }) => return Err(unknown(said)),
        Err(error) => {
            return Err(ReleaseError::Graph {
                channel: channel.to_string(),
                arch,
                error: Box::new(error),
            });
        }
    };
    let answer = parse_answer(channel, &body)?;
    if answer.nodes.is_empty() {
        return Err(unknown("the graph lists no release in it".into()));
    }
    Ok(answer)
}

pub fn parse(channel: &str, body: &[u8]) -> Result<Vec<Node>, ReleaseError> {
    Ok(parse_answer(channel, body)?.nodes)
}

fn parse_answer(channel: &str, body: &[u8]) -> Result<Answer, ReleaseError> {
    let graph: Graph = serde_json::from_slice(body).map_err(|e| ReleaseError::GraphFormat {
        channel: channel.to_string(),
        message: e.to_string(),
    })?;
    let mut channels = std::collections::BTreeSet::new();
    let mut nodes: Vec<Node> = graph
        .nodes
        .into_iter()
        .filter_map(|n| {
            if let Some(list) = n.metadata.get(CHANNELS_KEY) {
                channels.extend(
                    list.split(',')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_string),
                );
            }
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
    Ok(Answer {
        nodes,
        channels: channels.into_iter().collect(),
    })
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
    fn the_channels_the_nodes_name_are_collected() {
        let body = br#"{"nodes":[
            {"version":"4.16.1","metadata":{"io.openshift.upgrades.graph.release.channels":"stable-4.16,fast-4.16"}},
            {"version":"4.16.2","metadata":{"io.openshift.upgrades.graph.release.channels":"candidate-4.17, stable-4.16"}}]}"#;
        let a = parse_answer("stable-4.16", body).unwrap();
        assert_eq!(a.channels, ["candidate-4.17", "fast-4.16", "stable-4.16"]);
        assert_eq!(a.nodes.len(), 2);
    }

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
