//! Finding kernel modules in an image: the layers are read base first, whiteouts applied, and
//! every `.ko` under a `lib/modules/<kernel>/` directory (`/opt/lib/modules` as KMM uses it,
//! `/lib/modules` or `/usr/lib/modules`) kept with the kernel directory it sits in.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};

/// Largest module accepted; real ones are kilobytes to a few megabytes.
const MODULE_MAX: u64 = 256 << 20;

/// A module file of the image's final filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Path in the image, without a leading `/`.
    pub path: String,
    /// The `<kernel>` directory it sits under.
    pub kernel_dir: String,
    /// Module name as the kernel sees it (`-` folded into `_`).
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The module name of a `.ko` file name, `-` folded into `_` as the kernel does.
pub fn module_name(file: &str) -> Option<String> {
    let stem = file.strip_suffix(".ko")?;
    Some(stem.replace('-', "_"))
}

/// `(kernel_dir, file name)` when `path` is a module under a modules directory.
fn classify(path: &str) -> Option<(String, String)> {
    for prefix in ["opt/lib/modules/", "lib/modules/", "usr/lib/modules/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let (kernel, tail) = rest.split_once('/')?;
            let file = tail.rsplit('/').next()?;
            if file.ends_with(".ko") && !kernel.is_empty() {
                return Some((kernel.to_string(), file.to_string()));
            }
        }
    }
    None
}

/// The image's modules, from its layers in manifest order (base first).
#[derive(Default)]
pub struct Scanner {
    files: BTreeMap<String, ModuleFile>,
}

impl Scanner {
    /// Applies one layer on top of what the layers before it left.
    pub fn layer<R: Read>(&mut self, blob: R) -> io::Result<()> {
        let buffered = BufReader::with_capacity(64 << 10, blob);
        let mut archive = tar::Archive::new(crate::release::layer::decoder(buffered)?);
        let mut removed: Vec<String> = Vec::new();
        let mut opaque: Vec<String> = Vec::new();
        let mut added: Vec<ModuleFile> = Vec::new();
        for entry in archive.entries()? {
            let mut entry = entry?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = raw
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_string();
            let (dir, file) = match path.rsplit_once('/') {
                Some((d, f)) => (format!("{d}/"), f.to_string()),
                None => (String::new(), path.clone()),
            };
            if file == ".wh..wh..opq" {
                opaque.push(dir);
                continue;
            }
            if let Some(hidden) = file.strip_prefix(".wh.") {
                removed.push(format!("{dir}{hidden}"));
                continue;
            }
            let Some((kernel_dir, file_name)) = classify(&path) else {
                continue;
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let size = entry.header().size()?;
            if size > MODULE_MAX {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("`{path}` claims {size} bytes; no module is that large"),
                ));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            (&mut entry).take(MODULE_MAX).read_to_end(&mut bytes)?;
            added.push(ModuleFile {
                name: module_name(&file_name).expect("classify only accepts .ko files"),
                path,
                kernel_dir,
                bytes,
            });
        }
        // Whiteouts and opaque directories hide what lower layers had, not this layer's files.
        self.files.retain(|p, _| {
            !removed
                .iter()
                .any(|r| p == r || p.starts_with(&format!("{r}/")))
                && !opaque.iter().any(|d| p.starts_with(d.as_str()))
        });
        for f in added {
            self.files.insert(f.path.clone(), f);
        }
        Ok(())
    }

    /// Every module of the final filesystem, by path.
    pub fn finish(self) -> Vec<ModuleFile> {
        self.files.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn finds_modules_and_honours_whiteouts() {
        let mut s = Scanner::default();
        s.layer(
            layer(&[
                ("opt/lib/modules/6.1.0-50-amd64/hello.ko", b"one"),
                ("opt/lib/modules/6.1.0-50-amd64/old-thing.ko", b"old"),
                ("usr/lib/modules/6.1.0-50-amd64/kernel/x.ko", b"x"),
                ("etc/passwd", b"root"),
            ])
            .as_slice(),
        )
        .unwrap();
        s.layer(
            layer(&[
                ("./opt/lib/modules/6.1.0-50-amd64/.wh.old-thing.ko", b""),
                ("usr/lib/modules/.wh..wh..opq", b""),
                ("opt/lib/modules/6.1.0-50-amd64/hello.ko", b"two"),
            ])
            .as_slice(),
        )
        .unwrap();
        let found = s.finish();
        let paths: Vec<(&str, &str, &[u8])> = found
            .iter()
            .map(|f| (f.path.as_str(), f.name.as_str(), f.bytes.as_slice()))
            .collect();
        assert_eq!(
            paths,
            [(
                "opt/lib/modules/6.1.0-50-amd64/hello.ko",
                "hello",
                b"two".as_slice()
            )]
        );
        assert_eq!(found[0].kernel_dir, "6.1.0-50-amd64");
    }

    #[test]
    fn module_names_fold_dashes() {
        assert_eq!(module_name("acme-net.ko").as_deref(), Some("acme_net"));
        assert_eq!(module_name("acme_net.ko.xz"), None);
    }
}
