//! OpenShift release payloads in the real format (see `payload-format.md` in the project's
//! shared notes): a base layer, then a last layer whose tar holds `release-manifests/`, then
//! `image-references` (an ImageStream of ~190 tags, `driver-toolkit` not first), then
//! `release-metadata`, then megabytes of operator manifests.

use crate::oci::{self, Compression, Flavor, Layer, Pushed, Pusher};

/// Real tag names of a 4.14 payload; the rest are made up to reach a realistic count.
const REAL_TAGS: [&str; 24] = [
    "agent-installer-api-server",
    "alibaba-cloud-controller-manager",
    "apiserver-network-proxy",
    "aws-cloud-controller-manager",
    "aws-ebs-csi-driver",
    "azure-disk-csi-driver",
    "baremetal-installer",
    "cli",
    "cluster-authentication-operator",
    "cluster-version-operator",
    "console",
    "coredns",
    "driver-toolkit",
    "etcd",
    "haproxy-router",
    "hyperkube",
    "installer",
    "kube-proxy",
    "machine-config-operator",
    "must-gather",
    "oauth-server",
    "ovn-kubernetes",
    "rhel-coreos",
    "rhel-coreos-extensions",
];

/// What to put into a payload.
#[derive(Debug, Clone)]
pub struct PayloadSpec {
    pub version: String,
    /// `from.name` of the `driver-toolkit` tag; `None` leaves the tag out.
    pub dtk: Option<String>,
    /// `machine-os=` of `rhel-coreos`; `None` leaves the annotation out.
    pub machine_os: Option<String>,
    /// `from.name` of `rhel-coreos` (see [`OsImage`]); `None` gives that tag no `from`, so the
    /// payload names no OS image to read the nodes' kernel from.
    pub os: Option<String>,
    /// A dual-stream release (RHEL 10): `from.name` of `driver-toolkit-10`; `None` leaves the
    /// stream out.
    pub dtk10: Option<String>,
    /// `from.name` of `rhel-coreos-10` (with [`Self::dtk10`]); `None` gives it no `from`.
    pub os10: Option<String>,
    /// The ImageStream's `kind` (`ImageStream` unless testing a broken payload).
    pub kind: String,
    /// Total tags in the ImageStream.
    pub tags: usize,
    /// Bytes of operator manifests after `release-metadata`.
    pub filler: usize,
    /// `release.openshift.io/architecture: multi` in the metadata.
    pub multi: bool,
    pub compression: Compression,
    /// Repository the other component images are named in.
    pub components: String,
    /// Size of the (incompressible) base layer.
    pub base: usize,
}

impl PayloadSpec {
    pub fn new(version: &str, dtk: Option<String>) -> PayloadSpec {
        PayloadSpec {
            version: version.to_string(),
            dtk,
            machine_os: Some(format!(
                "4{}.92.202402130420-0",
                version.split('.').nth(1).unwrap_or("0")
            )),
            os: None,
            dtk10: None,
            os10: None,
            kind: "ImageStream".into(),
            tags: 190,
            filler: 3 << 20,
            multi: false,
            compression: Compression::Gzip,
            components: "quay.io/openshift-release-dev/ocp-v4.0-art-dev".into(),
            base: 256 << 10,
        }
    }

    fn component(&self, name: &str) -> String {
        let d = oci::sha256(format!("{}/{name}", self.version).as_bytes());
        format!("{}@{d}", self.components)
    }

    /// The tag names, sorted as `oc` writes them, `driver-toolkit` among them.
    fn tag_names(&self) -> Vec<String> {
        let mut names: Vec<String> = REAL_TAGS.iter().map(|s| s.to_string()).collect();
        let mut i = 0;
        while names.len() < self.tags {
            names.push(format!("component-{i:03}-operator"));
            i += 1;
        }
        if self.dtk.is_none() {
            names.retain(|n| n != "driver-toolkit");
        }
        if self.dtk10.is_some() {
            names.truncate(self.tags.saturating_sub(2).max(REAL_TAGS.len()));
            names.push("driver-toolkit-10".into());
            names.push("rhel-coreos-10".into());
        }
        names.sort();
        names
    }

    /// `release-manifests/image-references`, pretty-printed as `oc` writes it.
    pub fn image_references(&self) -> String {
        let tags: Vec<serde_json::Value> = self
            .tag_names()
            .iter()
            .map(|name| {
                let named = |r: &Option<String>| match r {
                    Some(r) => serde_json::json!({"kind": "DockerImage", "name": r}),
                    None => serde_json::Value::Null,
                };
                let from = match name.as_str() {
                    "driver-toolkit" => named(&self.dtk),
                    "driver-toolkit-10" => named(&self.dtk10),
                    "rhel-coreos" => named(&self.os),
                    "rhel-coreos-10" => named(&self.os10),
                    _ => named(&Some(self.component(name))),
                };
                let mut annotations = serde_json::json!({
                    "io.openshift.build.commit.id": hex::encode(&oci::sha256(name.as_bytes()).as_bytes()[7..27]),
                    "io.openshift.build.source-location": format!("https://github.com/openshift/{name}"),
                });
                if name == "rhel-coreos"
                    && let Some(m) = &self.machine_os
                {
                    annotations["io.openshift.build.versions"] =
                        format!("machine-os={m}").into();
                }
                let mut tag = serde_json::json!({
                    "name": name,
                    "annotations": annotations,
                    "generation": 2,
                    "importPolicy": {},
                    "referencePolicy": {"type": "Source"},
                });
                if !from.is_null() {
                    tag["from"] = from;
                }
                tag
            })
            .collect();
        let stream = serde_json::json!({
            "kind": self.kind,
            "apiVersion": "image.openshift.io/v1",
            "metadata": {
                "name": self.version,
                "creationTimestamp": "2024-02-13T04:20:00Z",
                "annotations": {"release.openshift.io/from-image-stream": "ocp/4.14-art-latest"},
            },
            "spec": {"lookupPolicy": {"local": false}, "tags": tags},
            "status": {"dockerImageRepository": ""},
        });
        serde_json::to_string_pretty(&stream).expect("JSON into memory")
    }

    /// `release-manifests/release-metadata`.
    pub fn release_metadata(&self) -> String {
        let mut metadata = serde_json::json!({
            "url": format!("https://access.redhat.com/errata/RHBA-2024:{}", self.version.replace('.', ""))
        });
        if self.multi {
            metadata["release.openshift.io/architecture"] = "multi".into();
        }
        serde_json::to_string_pretty(&serde_json::json!({
            "kind": "cincinnati-metadata-v0",
            "version": self.version,
            "previous": [],
            "metadata": metadata,
        }))
        .expect("JSON into memory")
    }

    fn head_entries(&self) -> Vec<(String, Vec<u8>)> {
        vec![
            ("release-manifests/".into(), Vec::new()),
            (
                "release-manifests/image-references".into(),
                self.image_references().into_bytes(),
            ),
            (
                "release-manifests/release-metadata".into(),
                self.release_metadata().into_bytes(),
            ),
        ]
    }

    /// The last layer's tar: the release manifests, then the filler.
    pub fn release_tar(&self) -> Vec<u8> {
        let mut entries = self.head_entries();
        let mut left = self.filler;
        let mut i = 0u64;
        while left > 0 {
            let n = left.min(24 << 10);
            // Hex text: compresses about as well as real YAML does (2-4x).
            let text = hex::encode(oci::noise(n / 2, 7 + i));
            entries.push((
                format!("release-manifests/0000_50_component-{i:03}_01-deployment.yaml"),
                format!("apiVersion: v1\nkind: ConfigMap\ndata:\n  x: {text}\n").into_bytes(),
            ));
            left -= n;
            i += 1;
        }
        let refs: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        oci::tar(&refs)
    }

    /// The compressed bytes any reader must fetch from the last layer: the shortest prefix of
    /// the blob from which a decompressor yields everything through the end of
    /// `release-metadata` (found by bisection on the real blob).
    pub fn minimal_prefix(&self) -> usize {
        let entries = self.head_entries();
        let refs: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        let needed = oci::tar(&refs).len() - 1024; // without the end-of-archive blocks
        let blob = Layer::new(&self.release_tar(), self.compression).blob;
        let (mut lo, mut hi) = (0, blob.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if decoded_len(&blob[..mid], self.compression) >= needed {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    pub fn layers(&self) -> Vec<Layer> {
        let base = oci::tar(&[(
            "usr/bin/cluster-version-operator",
            &oci::noise(self.base, 1),
        )]);
        vec![
            Layer::new(&base, Compression::Gzip),
            Layer::new(&self.release_tar(), self.compression),
        ]
    }

    /// Pushes the payload as `repo:tag` (or by digest).
    pub fn push(
        &self,
        pusher: &Pusher,
        repo: &str,
        tag: Option<&str>,
        goarch: &str,
        flavor: Flavor,
    ) -> std::io::Result<Pushed> {
        pusher.image(
            repo,
            tag,
            &self.layers(),
            &[
                ("io.openshift.release", &self.version),
                (
                    "io.openshift.release.base-image-digest",
                    &oci::sha256(b"base"),
                ),
            ],
            goarch,
            flavor,
        )
    }
}

/// An RHCOS stand-in: one small layer, and the kernel the nodes boot in its config's
/// `ostree.linux` label (or `com.coreos.rpm.kernel`, as `machine-os-content` carries it).
#[derive(Debug, Clone)]
pub struct OsImage {
    pub kernel: String,
    /// The label that carries the kernel.
    pub label: &'static str,
    /// The real-time kernel, in `com.coreos.rpm.kernel-rt-core` as `machine-os-content`
    /// carries it.
    pub rt_kernel: Option<String>,
}

impl OsImage {
    pub fn new(kernel: &str) -> OsImage {
        OsImage {
            kernel: kernel.to_string(),
            label: "ostree.linux",
            rt_kernel: None,
        }
    }

    /// Pushes the image by digest (no tag), as a payload names it.
    pub fn push(
        &self,
        pusher: &Pusher,
        repo: &str,
        goarch: &str,
        flavor: Flavor,
    ) -> std::io::Result<Pushed> {
        let release = format!(
            "NAME=\"Red Hat Enterprise Linux CoreOS\"\nKERNEL={}\n",
            self.kernel
        );
        let layer = oci::tar(&[
            ("usr/", b""),
            ("usr/lib/", b""),
            ("usr/lib/os-release", release.as_bytes()),
        ]);
        let mut labels = vec![
            (self.label, self.kernel.as_str()),
            ("ostree.bootable", "true"),
        ];
        if let Some(rt) = &self.rt_kernel {
            labels.push(("com.coreos.rpm.kernel-rt-core", rt));
        }
        pusher.image(
            repo,
            None,
            &[Layer::new(&layer, Compression::Gzip)],
            &labels,
            goarch,
            flavor,
        )
    }
}

/// How many bytes a decompressor yields from a truncated blob before it runs out of input.
fn decoded_len(prefix: &[u8], compression: Compression) -> usize {
    use std::io::Read;
    let mut r: Box<dyn Read + '_> = match compression {
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(prefix)),
        Compression::Zstd => match zstd::stream::read::Decoder::new(prefix) {
            Ok(d) => Box::new(d),
            Err(_) => return 0,
        },
        Compression::None => Box::new(prefix),
    };
    let mut buf = [0u8; 64 << 10];
    let mut total = 0;
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        total += n;
    }
    total
}
