//! An image's files as a test reads them: copied from the loopback registry with skopeo, each
//! layer unpacked in order (gzip, zstd or plain tar).

use std::io::Read as _;
use std::process::Command;

/// The regular files of `image` whose path (relative, without `./`) `keep` accepts, in layer
/// order: a file a later layer writes again comes after the earlier one. Whiteouts are not
/// applied: the tests read images whose layers only add files.
pub fn image_files(image: &str, keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{image}"))
        .arg(format!("dir:{}", layout.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("manifest.json")).unwrap()).unwrap();
    let mut found = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let blob = std::fs::read(layout.join(digest.trim_start_matches("sha256:"))).unwrap();
        let tar: Box<dyn std::io::Read> = if blob.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(blob.as_slice()))
        } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(zstd::Decoder::new(blob.as_slice()).unwrap())
        } else {
            Box::new(blob.as_slice())
        };
        for entry in tar::Archive::new(tar).entries().unwrap() {
            let mut entry = entry.unwrap();
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let path = path.trim_start_matches("./").to_string();
            if !keep(&path) {
                continue;
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            found.push((path, bytes));
        }
    }
    found
}
