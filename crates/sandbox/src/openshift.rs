//! The sandbox's OpenShift: release payloads in the real format pushed where quay.io keeps
//! them (`openshift-release-dev/ocp-release:<version>-<arch>`), each naming a DTK stand-in by
//! digest in `openshift-release-dev/ocp-v4.0-art-dev`, and the update graph's channels over
//! them. Several releases share a DTK and so a kernel, as consecutive z-streams do; 4.16.2 is
//! a multi-arch payload (a manifest list whose DTK is a manifest list too).

use std::collections::BTreeMap;

use crate::debian_dtk::{DTK_REPO, DebianDtk};
use crate::dtk::DtkSpec;
use crate::oci::{Flavor, Pushed, Pusher};
use crate::payload::PayloadSpec;

pub const PAYLOAD_REPO: &str = "openshift-release-dev/ocp-release";

/// One release of the sandbox.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseDef {
    pub version: &'static str,
    /// Which Debian suite's DTK it ships.
    pub suite: &'static str,
    /// Published as `<version>-multi`, a manifest list, instead of `<version>-x86_64`.
    pub multi: bool,
}

/// The releases: two minors, two kernels, one multi-arch payload.
pub const RELEASES: [ReleaseDef; 5] = [
    ReleaseDef {
        version: "4.15.1",
        suite: "bookworm",
        multi: false,
    },
    ReleaseDef {
        version: "4.15.2",
        suite: "bookworm",
        multi: false,
    },
    ReleaseDef {
        version: "4.16.0",
        suite: "trixie",
        multi: false,
    },
    ReleaseDef {
        version: "4.16.1",
        suite: "trixie",
        multi: false,
    },
    ReleaseDef {
        version: "4.16.2",
        suite: "trixie",
        multi: true,
    },
];

/// The Debian suites whose DTK stand-ins the releases need, with the RHEL version the DTKs of
/// those OpenShift minors report (4.15 ships RHEL 9.2, 4.16 RHEL 9.4).
pub const SUITES: [(&str, &str); 2] = [("bookworm", "9.2"), ("trixie", "9.4")];

/// A published release.
#[derive(Debug, Clone)]
pub struct Published {
    pub version: String,
    pub suite: String,
    pub kernel: String,
    /// `quay.io/openshift-release-dev/ocp-release@sha256:...` (the list for a multi payload).
    pub payload: String,
    /// The tag it was pushed under: `<version>-x86_64` or `<version>-multi`.
    pub tag: String,
    /// The x86_64 DTK by digest.
    pub dtk: String,
}

/// Pushes every release in [`RELEASES`] over `dtks` (by suite) and returns them in order.
/// Payloads are generated deterministically, so pushing again changes no digest.
pub fn publish(
    pusher: &Pusher,
    dtks: &BTreeMap<String, DebianDtk>,
) -> std::io::Result<Vec<Published>> {
    let mut out = Vec::new();
    for r in RELEASES {
        let dtk = dtks
            .get(r.suite)
            .ok_or_else(|| std::io::Error::other(format!("no DTK stand-in for {}", r.suite)))?;
        let (tag, pushed) = if r.multi {
            (
                format!("{}-multi", r.version),
                push_multi(pusher, r.version, dtk)?,
            )
        } else {
            let tag = format!("{}-x86_64", r.version);
            let spec = PayloadSpec::new(r.version, Some(dtk.quay_ref()));
            let pushed = spec.push(pusher, PAYLOAD_REPO, Some(&tag), "amd64", Flavor::Docker)?;
            (tag, pushed)
        };
        out.push(Published {
            version: r.version.to_string(),
            suite: r.suite.to_string(),
            kernel: dtk.kernel.clone(),
            payload: format!("quay.io/{PAYLOAD_REPO}@{}", pushed.digest),
            tag,
            dtk: dtk.quay_ref(),
        });
    }
    Ok(out)
}

/// A multi payload: per-arch payloads (metadata `architecture: multi`) under one manifest
/// list, each naming a DTK manifest list whose amd64 child is the real stand-in. The arm64
/// child is synthetic (no sandbox build targets arm64).
fn push_multi(pusher: &Pusher, version: &str, dtk: &DebianDtk) -> std::io::Result<Pushed> {
    let arm = DtkSpec::new(&dtk.kernel.replace("amd64", "arm64"));
    let mut arm = DtkSpec {
        rhel: dtk.rhel.clone(),
        base: 1 << 20,
        ..arm
    };
    arm.json = Some(crate::debian_dtk::release_json(&arm.kernel, &dtk.rhel));
    let arm = arm.push(pusher, DTK_REPO, "arm64", Flavor::Docker)?;
    let dtk_list = pusher.list(
        DTK_REPO,
        None,
        &[(&dtk.pushed, "amd64"), (&arm, "arm64")],
        Flavor::Docker,
    )?;
    let mut spec = PayloadSpec::new(
        version,
        Some(format!("quay.io/{DTK_REPO}@{}", dtk_list.digest)),
    );
    spec.multi = true;
    let amd = spec.push(pusher, PAYLOAD_REPO, None, "amd64", Flavor::Docker)?;
    let arm = spec.push(pusher, PAYLOAD_REPO, None, "arm64", Flavor::Docker)?;
    pusher.list(
        PAYLOAD_REPO,
        Some(&format!("{version}-multi")),
        &[(&amd, "amd64"), (&arm, "arm64")],
        Flavor::Docker,
    )
}

/// The channels a release is in: its own minor's, and the next minor's (a channel lists the
/// previous minor's versions so clusters can upgrade from them).
fn channels(version: &str) -> Vec<String> {
    let minor: u32 = version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    [minor, minor + 1]
        .iter()
        .flat_map(|m| ["candidate", "fast", "stable"].map(|c| format!("{c}-4.{m}")))
        .collect()
}

/// The update graph of `channel`: the releases in it, in no particular order (newest first
/// here, as a reader must not rely on the order), with upgrade edges between neighbours.
pub fn graph(channel: &str, releases: &[Published]) -> String {
    let mut nodes: Vec<&Published> = releases
        .iter()
        .filter(|r| channels(&r.version).iter().any(|c| c == channel))
        .collect();
    nodes.reverse();
    let json_nodes: Vec<serde_json::Value> = nodes
        .iter()
        .map(|r| {
            let digest = r.payload.rsplit_once('@').map_or("", |(_, d)| d);
            serde_json::json!({
                "version": r.version,
                "payload": r.payload,
                "metadata": {
                    "io.openshift.upgrades.graph.release.channels": channels(&r.version).join(","),
                    "io.openshift.upgrades.graph.release.manifestref": digest,
                    "url": format!("https://access.redhat.com/errata/RHBA-2024:{}", r.version.replace('.', "")),
                },
            })
        })
        .collect();
    // Edges go from older (higher index) to newer.
    let edges: Vec<[usize; 2]> = (1..nodes.len()).map(|i| [i, i - 1]).collect();
    serde_json::to_string(
        &serde_json::json!({"nodes": json_nodes, "edges": edges, "conditionalEdges": []}),
    )
    .expect("JSON into memory")
}

/// Every (channel, graph JSON) the sandbox serves for `arch=amd64`.
pub fn graphs(releases: &[Published]) -> Vec<(String, String)> {
    [
        "stable-4.15",
        "fast-4.15",
        "stable-4.16",
        "fast-4.16",
        "candidate-4.16",
    ]
    .iter()
    .map(|c| (c.to_string(), graph(c, releases)))
    .collect()
}
