//! KMM `BootModuleConfig`s ("Day 1"): one per driver, which KMM turns into a MachineConfig
//! with two systemd units (KMM's `internal/mcfg/templates/ignition.gotmpl` and `scripts/`): a
//! pull unit, after `network-online.target`, that pulls `<image>:$(uname -r)` unless that tag
//! is already on the node and then reboots the node; and a load unit, before
//! `network-pre.target`, that loads the module from the image already on the node. So the
//! module loads before the network only from the second boot on a kernel, an image rebuilt for
//! the same kernel is never fetched, and no module parameters can be passed.
//!
//! KMM appends the node's kernel release to `kernelModuleImage` itself, unnormalized, so only a
//! driver tagged with the bare kernel can be served; kernels whose release is not a valid tag
//! (`+rt`) cannot be served at all, and are named in the document's header.

use serde_json::{Map, Value, json};

use super::jobs::{Wanted, split, wanted};
use super::kmm::{ExportError, metadata};
use super::{Export, object_name, yaml};
use crate::lock::Lock;
use crate::matrix::{DEFAULT_TAG, Driver, Matrix};

/// Options of `export boot-module-config`.
#[derive(Debug, Clone)]
pub struct BootOptions {
    pub namespace: Option<String>,
    /// The MachineConfigPool whose nodes load the modules at boot.
    pub pool: String,
    /// Export a driver with module parameters anyway (loaded without them).
    pub drop_parameters: bool,
}

/// The tag templates that render exactly the kernel release (both name the same value).
const BARE_KERNEL_TAGS: [&str; 2] = [DEFAULT_TAG, "${KERNEL_VERSION}"];

/// One `BootModuleConfig` (kmm.sigs.x-k8s.io/v1beta1) per driver that has images, and the
/// jobs the lock has no image for. Refuses a driver whose tag is not the bare kernel.
pub fn boot_module_configs(
    matrix: &Matrix,
    lock: &Lock,
    opts: &BootOptions,
) -> Result<Export, ExportError> {
    for driver in &matrix.drivers {
        if !BARE_KERNEL_TAGS.contains(&driver.tag.to_string().as_str()) {
            return Err(ExportError::BootTag {
                driver: driver.name.clone(),
                tag: driver.tag.to_string(),
            });
        }
        if driver.modules.is_empty() {
            return Err(ExportError::NoModules {
                driver: driver.name.clone(),
            });
        }
        if !driver.kmm.parameters.is_empty() && !opts.drop_parameters {
            return Err(ExportError::BootParameters {
                driver: driver.name.clone(),
                parameters: driver.kmm.parameters.join(" "),
            });
        }
    }
    let mut docs = Vec::new();
    let mut missing: Vec<Wanted> = Vec::new();
    for driver in &matrix.drivers {
        let (images, absent) = split(lock, wanted(matrix, lock, driver));
        missing.extend(absent);
        if images.is_empty() {
            continue;
        }
        let unservable: Vec<&str> = images
            .iter()
            .filter(|i| i.kernel.normalized() != i.kernel.as_str())
            .map(|i| i.kernel.as_str())
            .collect();
        docs.push(document(driver, opts, images.len(), &unservable));
    }
    Ok(Export {
        text: yaml::documents(&docs),
        missing,
    })
}

/// The BootModuleConfig of `driver`, with the comment above it.
fn document(driver: &Driver, opts: &BootOptions, kernels: usize, unservable: &[&str]) -> String {
    let doc = json!({
        "apiVersion": "kmm.sigs.x-k8s.io/v1beta1",
        "kind": "BootModuleConfig",
        "metadata": metadata(&object_name(&driver.name), opts.namespace.as_deref()),
        "spec": spec(driver, opts),
    });
    let comment = comment(driver, opts, kernels, unservable);
    let comment: Vec<&str> = comment.iter().map(String::as_str).collect();
    yaml::document(&comment, &doc)
}

/// The `spec` of `driver`'s BootModuleConfig.
fn spec(driver: &Driver, opts: &BootOptions) -> Value {
    let kmm = &driver.kmm;
    let mut spec = Map::new();
    spec.insert("kernelModuleImage".into(), json!(driver.image.to_string()));
    spec.insert("kernelModuleName".into(), json!(driver.modules[0]));
    let mc = object_name(&format!("99-{}-kmm-{}", opts.pool, driver.name));
    spec.insert("machineConfigName".into(), json!(mc));
    spec.insert("machineConfigPoolName".into(), json!(opts.pool));
    if !kmm.in_tree_modules_to_remove.is_empty() {
        spec.insert(
            "inTreeModulesToRemove".into(),
            json!(kmm.in_tree_modules_to_remove),
        );
    }
    if let Some(path) = &kmm.firmware_path {
        spec.insert("firmwareFilesPath".into(), json!(path));
    }
    Value::Object(spec)
}

/// The lines of the comment above `driver`'s BootModuleConfig: what it does, and what a
/// BootModuleConfig cannot do that a Module would.
fn comment(
    driver: &Driver,
    opts: &BootOptions,
    kernels: usize,
    unservable: &[&str],
) -> Vec<String> {
    let kmm = &driver.kmm;
    let header = format!(
        "driver {}: nodes of pool `{}` pull `{}:$(uname -r)` at boot; the lock holds {kernels} kernel(s)",
        driver.name, opts.pool, driver.image
    );
    let mut comment = vec![
        "@generated by driver-matrix export boot-module-config".to_string(),
        header,
    ];
    if let [first, others @ ..] = driver.modules.as_slice()
        && !others.is_empty()
    {
        let others: Vec<String> = others.iter().map(|m| format!("`{m}`")).collect();
        comment.push(format!(
            "Only `{first}` is loaded at boot; {} only as modprobe dependencies of it (depmod).",
            others.join(", ")
        ));
    }
    if !kmm.parameters.is_empty() {
        comment.push(format!(
            "`{}` is loaded without its parameters ({}): a BootModuleConfig cannot pass them.",
            driver.modules[0],
            kmm.parameters.join(" ")
        ));
    }
    comment.push(
        "An image rebuilt for a kernel a node already has is not fetched at boot: the pull unit skips a tag already on the node. Roll it out by removing the old image from each node (`oc debug node/NODE -- chroot /host podman rmi IMAGE:KERNEL`) and rebooting it.".to_string(),
    );
    if kmm.sign.is_some() {
        comment.push(
            "KMM signs in the cluster for Modules only: at boot the unsigned image is loaded, so Secure Boot nodes need modules signed at build time."
                .to_string(),
        );
    }
    for k in unservable {
        comment.push(format!(
            "Kernel `{k}` cannot load at boot: its release is not a valid tag (KMM does not normalize it)."
        ));
    }
    comment
}
