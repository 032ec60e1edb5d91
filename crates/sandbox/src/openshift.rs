//! The sandbox's OpenShift: release payloads in the real format pushed where quay.io keeps
//! them (`openshift-release-dev/ocp-release:<version>-<arch>`), each naming a DTK stand-in by
//! digest in `openshift-release-dev/ocp-v4.0-art-dev`, and the update graph's channels over
//! them. Several releases share a DTK and so a kernel, as consecutive z-streams do; 4.16.2 is
//! a multi-arch payload (a manifest list whose DTK is a manifest list too); 4.17.0 ships a
//! second node OS stream (RHEL 10: `driver-toolkit-10`, `rhel-coreos-10`); the nodes of 4.15.3
//! boot another kernel than its DTK carries. OS images (`rhel-coreos`) are stand-ins whose
//! config's `ostree.linux` label names the nodes' kernel.

use std::collections::BTreeMap;

use crate::debian_dtk::{DTK_REPO, DebianDtk};
use crate::dtk::DtkSpec;
use crate::oci::{Flavor, Pushed, Pusher};
use crate::payload::{OsImage, PayloadSpec};

pub const PAYLOAD_REPO: &str = "openshift-release-dev/ocp-release";

/// One release of the sandbox.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseDef {
    pub version: &'static str,
    /// Which Debian suite's DTK it ships.
    pub suite: &'static str,
    /// Published as `<version>-multi`, a manifest list, instead of `<version>-x86_64`.
    pub multi: bool,
    /// A RHEL 10 dual-stream release: `driver-toolkit-10` is [`RHEL10`]'s stand-in (another
    /// kernel) and `rhel-coreos-10` an OS image booting that kernel.
    pub dual: bool,
    /// The nodes boot another kernel than the DTK carries: the OS image (`rhel-coreos`) reports
    /// the next ABI of the DTK's kernel, as releases whose DTK lagged the RHCOS kernel did.
    pub node_lags: bool,
}

impl ReleaseDef {
    const fn single(version: &'static str, suite: &'static str) -> ReleaseDef {
        ReleaseDef {
            version,
            suite,
            multi: false,
            dual: false,
            node_lags: false,
        }
    }
}

/// The releases: three minors, two kernels, one multi-arch payload, one RHEL 10 dual-stream
/// release (4.17.0) and one whose DTK carries another kernel than its nodes boot (4.15.3).
/// Single-arch payloads name an OS image (`rhel-coreos`) that reports the nodes' kernel.
pub const RELEASES: [ReleaseDef; 7] = [
    ReleaseDef::single("4.15.1", "bookworm"),
    ReleaseDef::single("4.15.2", "bookworm"),
    ReleaseDef {
        node_lags: true,
        ..ReleaseDef::single("4.15.3", "bookworm")
    },
    ReleaseDef::single("4.16.0", "trixie"),
    ReleaseDef::single("4.16.1", "trixie"),
    ReleaseDef {
        multi: true,
        ..ReleaseDef::single("4.16.2", "trixie")
    },
    ReleaseDef {
        dual: true,
        ..ReleaseDef::single("4.17.0", "trixie")
    },
];

/// The Debian suites whose DTK stand-ins the releases need, with the RHEL version the DTKs of
/// those OpenShift minors report (4.15 ships RHEL 9.2, 4.16 RHEL 9.4).
pub const SUITES: [(&str, &str); 2] = [("bookworm", "9.2"), ("trixie", "9.4")];

/// The RHEL 10 stream's DTK of a dual-stream release: a stand-in made from another suite's
/// root (so another kernel than the release's default stream), its release file saying RHEL
/// 10.0.
pub const RHEL10: (&str, &str) = ("bookworm", "10.0");

/// Where the OS images (`rhel-coreos` stand-ins) are pushed, by digest, as the DTKs are.
pub const OS_REPO: &str = DTK_REPO;

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
    /// The kernel the nodes boot, as the payload's OS image reports it (`None` when the
    /// payload names no OS image: the multi payload).
    pub node_kernel: Option<String>,
    /// The RHEL 10 stream of a dual-stream release.
    pub rhel10: Option<Stream10>,
}

/// The second stream of a dual-stream release.
#[derive(Debug, Clone)]
pub struct Stream10 {
    /// `driver-toolkit-10` by digest.
    pub dtk: String,
    pub kernel: String,
    pub rhel: String,
}

/// The next ABI of a Debian kernel (`6.1.0-28-amd64` → `6.1.0-29-amd64`): the kernel the
/// nodes of a release boot when its DTK lags.
pub fn next_abi(kernel: &str) -> String {
    let mut parts: Vec<String> = kernel.split('-').map(str::to_string).collect();
    match parts.get(1).and_then(|abi| abi.parse::<u32>().ok()) {
        Some(abi) => {
            parts[1] = (abi + 1).to_string();
            parts.join("-")
        }
        None => format!("{kernel}.1"),
    }
}

/// Pushes every release in [`RELEASES`] over `dtks` (by suite; [`RHEL10`]'s stand-in under
/// `rhel10`) and returns them in order. Payloads are generated deterministically, so pushing
/// again changes no digest.
pub fn publish(
    pusher: &Pusher,
    dtks: &BTreeMap<String, DebianDtk>,
    rhel10: &DebianDtk,
) -> std::io::Result<Vec<Published>> {
    let os = |kernel: &str| -> std::io::Result<String> {
        let pushed = OsImage::new(kernel).push(pusher, OS_REPO, "amd64", Flavor::Docker)?;
        Ok(format!("quay.io/{OS_REPO}@{}", pushed.digest))
    };
    let mut out = Vec::new();
    for r in RELEASES {
        let dtk = dtks
            .get(r.suite)
            .ok_or_else(|| std::io::Error::other(format!("no DTK stand-in for {}", r.suite)))?;
        let node_kernel = (!r.multi).then(|| {
            if r.node_lags {
                next_abi(&dtk.kernel)
            } else {
                dtk.kernel.clone()
            }
        });
        let stream10 = r.dual.then(|| Stream10 {
            dtk: rhel10.quay_ref(),
            kernel: rhel10.kernel.clone(),
            rhel: rhel10.rhel.clone(),
        });
        let (tag, pushed) = if r.multi {
            (
                format!("{}-multi", r.version),
                push_multi(pusher, r.version, dtk)?,
            )
        } else {
            let tag = format!("{}-x86_64", r.version);
            let mut spec = PayloadSpec::new(r.version, Some(dtk.quay_ref()));
            if let Some(node) = &node_kernel {
                spec.os = Some(os(node)?);
            }
            if let Some(s) = &stream10 {
                spec.dtk10 = Some(s.dtk.clone());
                spec.os10 = Some(os(&s.kernel)?);
            }
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
            node_kernel,
            rhel10: stream10,
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
        "stable-4.17",
        "fast-4.17",
    ]
    .iter()
    .map(|c| (c.to_string(), graph(c, releases)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lagging_release_boots_the_next_abi() {
        assert_eq!(next_abi("6.1.0-50-amd64"), "6.1.0-51-amd64");
        assert_eq!(next_abi("6.12.117+deb13-amd64"), "6.12.117+deb13-amd64.1");
        let lagging: Vec<&str> = RELEASES
            .iter()
            .filter(|r| r.node_lags)
            .map(|r| r.version)
            .collect();
        assert_eq!(lagging, ["4.15.3"]);
        let dual: Vec<&str> = RELEASES
            .iter()
            .filter(|r| r.dual)
            .map(|r| r.version)
            .collect();
        assert_eq!(dual, ["4.17.0"]);
        assert_ne!(RHEL10.0, "trixie", "the RHEL 10 stream has another kernel");
    }
}
