//! Driver Toolkit stand-ins: a large incompressible base layer and small layers on top, one of
//! which holds `etc/driver-toolkit-release.json` (the top one by default, an earlier one to
//! mimic squashed builds).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::oci::{self, Compression, Flavor, Layer, Pushed, Pusher};

#[derive(Debug, Clone)]
pub struct DtkSpec {
    pub kernel: String,
    pub rt_kernel: Option<String>,
    pub rhel: String,
    /// Overrides the release file's whole text (for broken DTKs).
    pub json: Option<String>,
    /// Size of the incompressible base layer.
    pub base: usize,
    /// Put the release file in the layer below the top one.
    pub json_in_earlier_layer: bool,
    pub compression: Compression,
}

impl DtkSpec {
    pub fn new(kernel: &str) -> DtkSpec {
        DtkSpec {
            kernel: kernel.to_string(),
            rt_kernel: None,
            rhel: "9.2".into(),
            json: None,
            base: 4 << 20,
            json_in_earlier_layer: false,
            compression: Compression::Gzip,
        }
    }

    pub fn release_json(&self) -> String {
        if let Some(j) = &self.json {
            return j.clone();
        }
        let mut v = serde_json::json!({"KERNEL_VERSION": self.kernel, "RHEL_VERSION": self.rhel});
        if let Some(rt) = &self.rt_kernel {
            v["RT_KERNEL_VERSION"] = rt.clone().into();
        }
        serde_json::to_string_pretty(&v).expect("JSON into memory")
    }

    /// Base layers are shared between DTKs of the same size (as real ones share RHEL layers).
    fn base_layer(&self) -> Layer {
        static CACHE: OnceLock<Mutex<HashMap<usize, Layer>>> = OnceLock::new();
        let mut cache = CACHE
            .get_or_init(Mutex::default)
            .lock()
            .expect("not poisoned");
        cache
            .entry(self.base)
            .or_insert_with(|| {
                let t = oci::tar(&[
                    ("usr/", b""),
                    ("usr/lib/", b""),
                    ("usr/lib/rhel-base.bin", &oci::noise(self.base, 42)),
                ]);
                Layer::new(&t, Compression::Gzip)
            })
            .clone()
    }

    pub fn layers(&self) -> Vec<Layer> {
        let json = self.release_json();
        let kernel_dir = format!("usr/src/kernels/{}/", self.kernel);
        let makefile = format!("# kernel {}\n", self.kernel);
        let tools = oci::tar(&[
            ("usr/src/", b""),
            (&kernel_dir, b""),
            (&format!("{kernel_dir}Makefile"), makefile.as_bytes()),
        ]);
        let release = oci::tar(&[
            ("etc/", b""),
            ("etc/driver-toolkit-release.json", json.as_bytes()),
        ]);
        let top_plain = oci::tar(&[("etc/", b""), ("etc/motd", makefile.as_bytes())]);
        if self.json_in_earlier_layer {
            vec![
                self.base_layer(),
                Layer::new(&[tools, release].concat_tar(), self.compression),
                Layer::new(&top_plain, self.compression),
            ]
        } else {
            vec![
                self.base_layer(),
                Layer::new(&tools, self.compression),
                Layer::new(&release, self.compression),
            ]
        }
    }

    /// The compressed bytes any reader must fetch: the top layer through the release file
    /// (all top layers when the file sits lower).
    pub fn minimal_bytes(&self) -> usize {
        let layers = self.layers();
        if self.json_in_earlier_layer {
            layers[1..].iter().map(|l| l.blob.len()).sum()
        } else {
            layers[2].blob.len()
        }
    }

    /// Pushes the DTK by digest (no tag), as the payload names it.
    pub fn push(
        &self,
        pusher: &Pusher,
        repo: &str,
        goarch: &str,
        flavor: Flavor,
    ) -> std::io::Result<Pushed> {
        let label = self.kernel.to_string();
        pusher.image(
            repo,
            None,
            &self.layers(),
            &[("kernel-version", &label)],
            goarch,
            flavor,
        )
    }
}

/// Joins two tars into one (drops the first one's end-of-archive blocks).
trait ConcatTar {
    fn concat_tar(self) -> Vec<u8>;
}

impl ConcatTar for [Vec<u8>; 2] {
    fn concat_tar(self) -> Vec<u8> {
        let [mut a, b] = self;
        a.truncate(a.len() - 1024);
        a.extend_from_slice(&b);
        a
    }
}
