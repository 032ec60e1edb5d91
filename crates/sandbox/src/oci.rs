//! Building OCI and Docker schema 2 images in memory and pushing them with the registry HTTP
//! API (monolithic blob upload, manifest PUT): layers, configs, manifests and manifest lists.

use std::io::Write as _;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::http;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Docker schema 2 or OCI media types throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Docker,
    Oci,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

/// One layer blob.
#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub diff_id: String,
    pub compression: Compression,
}

impl Layer {
    pub fn new(tar: &[u8], compression: Compression) -> Layer {
        let blob = match compression {
            Compression::Gzip => gzip(tar),
            Compression::Zstd => zstd::encode_all(tar, 3).expect("zstd into memory"),
            Compression::None => tar.to_vec(),
        };
        Layer {
            blob,
            diff_id: sha256(tar),
            compression,
        }
    }

    pub fn digest(&self) -> String {
        sha256(&self.blob)
    }

    fn media_type(&self, flavor: Flavor) -> &'static str {
        match (flavor, self.compression) {
            (Flavor::Docker, Compression::Gzip) => {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
            (Flavor::Docker, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
            (_, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (Flavor::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (Flavor::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
        }
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}

/// A tar of `(path, content)`; a path ending in `/` is a directory.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            h.set_mode(0o755);
        } else {
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
        }
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, path, *data).expect("tar into memory");
    }
    b.into_inner().expect("tar into memory")
}

/// Deterministic bytes that do not compress (xorshift).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What a push produced.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub size: usize,
    pub media_type: String,
    /// The manifest bytes as pushed.
    pub manifest: Vec<u8>,
}

/// Pushes to a registry on `addr` (plain HTTP), optionally with basic auth.
#[derive(Debug, Clone)]
pub struct Pusher {
    addr: String,
    auth: Option<String>,
}

impl Pusher {
    pub fn new(addr: &str) -> Pusher {
        Pusher {
            addr: addr.to_string(),
            auth: None,
        }
    }

    pub fn with_basic(mut self, user: &str, password: &str) -> Pusher {
        let raw = format!("{user}:{password}");
        self.auth = Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ));
        self
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        mut headers: Vec<(&str, String)>,
        body: &[u8],
    ) -> std::io::Result<http::Response> {
        if let Some(a) = &self.auth {
            headers.push(("Authorization", a.clone()));
        }
        http::request(&self.addr, method, path, &headers, body)
    }

    /// Uploads a blob (skipped when the repository already has it); returns its digest.
    pub fn blob(&self, repo: &str, bytes: &[u8]) -> std::io::Result<String> {
        let digest = sha256(bytes);
        let head = self.send("HEAD", &format!("/v2/{repo}/blobs/{digest}"), vec![], b"")?;
        if head.status == 200 {
            return Ok(digest);
        }
        let start = self.send("POST", &format!("/v2/{repo}/blobs/uploads/"), vec![], b"")?;
        if start.status != 202 {
            return Err(fail("starting an upload", &start));
        }
        let location = start
            .header("location")
            .ok_or_else(|| std::io::Error::other("upload without a Location"))?;
        let path = match location.find("/v2/") {
            Some(i) => &location[i..],
            None => location,
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        let put = self.send(
            "PUT",
            &format!("{path}{sep}digest={digest}"),
            vec![("Content-Type", "application/octet-stream".into())],
            bytes,
        )?;
        if put.status != 201 {
            return Err(fail("finishing an upload", &put));
        }
        Ok(digest)
    }

    /// PUTs a manifest at `reference` (a tag or its digest).
    pub fn manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> std::io::Result<Pushed> {
        let r = self.send(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            vec![("Content-Type", media_type.to_string())],
            body,
        )?;
        if r.status != 201 {
            return Err(fail("putting a manifest", &r));
        }
        Ok(Pushed {
            digest: sha256(body),
            size: body.len(),
            media_type: media_type.to_string(),
            manifest: body.to_vec(),
        })
    }

    /// Pushes an image (config with `labels`, then layers, then the manifest) under `tag`, or
    /// by digest only when `tag` is `None`.
    pub fn image(
        &self,
        repo: &str,
        tag: Option<&str>,
        layers: &[Layer],
        labels: &[(&str, &str)],
        goarch: &str,
        flavor: Flavor,
    ) -> std::io::Result<Pushed> {
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        let config = serde_json::json!({
            "architecture": goarch,
            "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        });
        let config = serde_json::to_vec(&config).expect("JSON into memory");
        self.blob(repo, &config)?;
        for l in layers {
            self.blob(repo, &l.blob)?;
        }
        let (mt, config_mt) = match flavor {
            Flavor::Docker => (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
            ),
            Flavor::Oci => (OCI_MANIFEST, "application/vnd.oci.image.config.v1+json"),
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": {"mediaType": config_mt, "digest": sha256(&config), "size": config.len()},
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type(flavor), "digest": l.digest(), "size": l.blob.len()
            })).collect::<Vec<_>>(),
        });
        let body = serde_json::to_vec_pretty(&manifest).expect("JSON into memory");
        let reference = tag.map_or_else(|| sha256(&body), str::to_string);
        self.manifest(repo, &reference, mt, &body)
    }

    /// Pushes a manifest list (Docker) or an index (OCI) over `children` (`(image, goarch)`).
    pub fn list(
        &self,
        repo: &str,
        tag: Option<&str>,
        children: &[(&Pushed, &str)],
        flavor: Flavor,
    ) -> std::io::Result<Pushed> {
        let mt = match flavor {
            Flavor::Docker => DOCKER_LIST,
            Flavor::Oci => OCI_INDEX,
        };
        let list = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "manifests": children.iter().map(|(p, goarch)| {
                let mut platform = serde_json::json!({"os": "linux", "architecture": goarch});
                if *goarch == "arm64" {
                    platform["variant"] = "v8".into();
                }
                serde_json::json!({"mediaType": p.media_type, "digest": p.digest, "size": p.size, "platform": platform})
            }).collect::<Vec<_>>(),
        });
        let body = serde_json::to_vec_pretty(&list).expect("JSON into memory");
        let reference = tag.map_or_else(|| sha256(&body), str::to_string);
        self.manifest(repo, &reference, mt, &body)
    }
}

fn fail(what: &str, r: &http::Response) -> std::io::Error {
    std::io::Error::other(format!(
        "{what}: HTTP {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    ))
}
