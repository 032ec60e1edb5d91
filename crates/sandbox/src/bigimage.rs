//! Images too big for memory: a directory tree streamed into a gzip (level 1) layer file on
//! disk, hashed on the way, and pushed with the registry's chunked upload (`PATCH` with
//! `Content-Range`, then `PUT ?digest=`). The DTK stand-ins' root filesystems (0.5-1 GB) go
//! through here; small layers still use [`crate::oci::Pusher::blob`].

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::http;
use crate::oci::{self, Pushed, Pusher};

/// Bytes per `PATCH` of a chunked upload.
const CHUNK: usize = 32 << 20;

/// A gzip layer: its blob on disk (or in memory for small ones), its digests and size.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    pub source: Source,
    /// `sha256:` of the compressed blob.
    pub digest: String,
    /// `sha256:` of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Memory(Vec<u8>),
}

impl LayerBlob {
    /// A small layer from an uncompressed tar in memory.
    pub fn from_tar(tar: &[u8]) -> LayerBlob {
        let blob = oci::gzip(tar);
        LayerBlob {
            digest: oci::sha256(&blob),
            diff_id: oci::sha256(tar),
            size: blob.len() as u64,
            source: Source::Memory(blob),
        }
    }
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hashing<W>(inner: W) -> Hashing<W> {
    Hashing {
        inner,
        hash: Sha256::new(),
        len: 0,
    }
}

/// Tars `root` (sorted, ownership and modes kept, `skip`ped top-level directories left empty)
/// into a gzip level 1 file at `out`.
pub fn tar_dir(root: &Path, out: &Path, skip: &[&str]) -> std::io::Result<LayerBlob> {
    let file = BufWriter::with_capacity(1 << 20, File::create(out)?);
    let gz = flate2::write::GzEncoder::new(hashing(file), flate2::Compression::new(1));
    let mut builder = tar::Builder::new(hashing(gz));
    builder.follow_symlinks(false);
    append_tree(&mut builder, root, Path::new(""), skip)?;
    let tar_side = builder.into_inner()?;
    let diff_id = format!("sha256:{}", hex::encode(tar_side.hash.finalize()));
    let mut blob_side = tar_side.inner.finish()?;
    blob_side.flush()?;
    let digest = format!("sha256:{}", hex::encode(blob_side.hash.finalize()));
    Ok(LayerBlob {
        source: Source::File(out.to_path_buf()),
        digest,
        diff_id,
        size: blob_side.len,
    })
}

fn append_tree<W: Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    skip: &[&str],
) -> std::io::Result<()> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = rel.join(e.file_name());
        let meta = std::fs::symlink_metadata(e.path())?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        h.set_mode(meta.mode() & 0o7777);
        let ft = meta.file_type();
        if ft.is_dir() {
            h.set_size(0);
            b.append_data(&mut h, &name, std::io::empty())?;
            let top = rel.as_os_str().is_empty();
            if !(top && skip.iter().any(|s| e.file_name() == *s)) {
                append_tree(b, root, &name, skip)?;
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(e.path())?;
            h.set_size(0);
            b.append_link(&mut h, &name, &target)?;
        } else if ft.is_file() {
            let f = File::open(e.path())?;
            b.append_data(&mut h, &name, f)?;
        }
        // Devices, sockets and fifos: a container runtime provides its own /dev.
    }
    Ok(())
}

/// Uploads `layer` to `repo` unless the registry has it: chunked for files, monolithic for
/// small in-memory blobs.
pub fn upload(pusher: &Pusher, repo: &str, layer: &LayerBlob) -> std::io::Result<()> {
    let path = match &layer.source {
        Source::Memory(bytes) => {
            pusher.blob(repo, bytes)?;
            return Ok(());
        }
        Source::File(path) => path,
    };
    let addr = pusher.addr();
    let head = http::request(
        addr,
        "HEAD",
        &format!("/v2/{repo}/blobs/{}", layer.digest),
        &[],
        b"",
    )?;
    if head.status == 200 {
        return Ok(());
    }
    let start = http::request(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    )?;
    if start.status != 202 {
        return Err(fail("starting an upload", &start));
    }
    let mut location = location_of(&start)?;
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        let r = http::request(
            addr,
            "PATCH",
            &location,
            &[
                ("Content-Type", "application/octet-stream".into()),
                (
                    "Content-Range",
                    format!("{offset}-{}", offset + n as u64 - 1),
                ),
            ],
            &buf[..n],
        )?;
        if r.status != 202 {
            return Err(fail("uploading a chunk", &r));
        }
        location = location_of(&r)?;
        offset += n as u64;
    }
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = http::request(
        addr,
        "PUT",
        &format!("{location}{sep}digest={}", layer.digest),
        &[("Content-Type", "application/octet-stream".into())],
        b"",
    )?;
    if put.status != 201 {
        return Err(fail("finishing a chunked upload", &put));
    }
    Ok(())
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn location_of(r: &http::Response) -> std::io::Result<String> {
    let l = r
        .header("location")
        .ok_or_else(|| std::io::Error::other("upload response without a Location"))?;
    Ok(match l.find("/v2/") {
        Some(i) => l[i..].to_string(),
        None => l.to_string(),
    })
}

fn fail(what: &str, r: &http::Response) -> std::io::Error {
    std::io::Error::other(format!(
        "{what}: HTTP {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    ))
}

/// What goes into an image config besides its layers.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub labels: Vec<(String, String)>,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
}

/// Pushes a Docker schema 2 image of `layers` (bottom first) as `repo:tag`, or by digest only
/// when `tag` is `None`.
pub fn push(
    pusher: &Pusher,
    repo: &str,
    tag: Option<&str>,
    layers: &[LayerBlob],
    goarch: &str,
    config: &Config,
) -> std::io::Result<Pushed> {
    for l in layers {
        upload(pusher, repo, l)?;
    }
    let labels: serde_json::Map<String, serde_json::Value> = config
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let mut inner = serde_json::json!({"Labels": labels});
    if !config.env.is_empty() {
        inner["Env"] = config.env.clone().into();
    }
    if !config.cmd.is_empty() {
        inner["Cmd"] = config.cmd.clone().into();
    }
    let cfg = serde_json::json!({
        "architecture": goarch,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": inner,
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
    });
    let cfg = serde_json::to_vec(&cfg).expect("JSON into memory");
    pusher.blob(repo, &cfg)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": oci::sha256(&cfg), "size": cfg.len()},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": l.digest, "size": l.size
        })).collect::<Vec<_>>(),
    });
    let body = serde_json::to_vec_pretty(&manifest).expect("JSON into memory");
    let reference = tag.map_or_else(|| oci::sha256(&body), str::to_string);
    pusher.manifest(repo, &reference, oci::DOCKER_MANIFEST, &body)
}

/// Whether the registry has `repo@digest` (a manifest).
pub fn has_manifest(pusher: &Pusher, repo: &str, digest: &str) -> bool {
    http::request(
        pusher.addr(),
        "HEAD",
        &format!("/v2/{repo}/manifests/{digest}"),
        &[(
            "Accept",
            format!("{},{}", oci::DOCKER_MANIFEST, oci::DOCKER_LIST),
        )],
        b"",
    )
    .is_ok_and(|r| r.status == 200)
}
