//! Module dependencies that `modprobe -d /opt` will not find. A module's `depends:` must each
//! be a module of the image (in its kernel's directory), or one of the kernel's own: built in
//! (`modules.builtin`), or a module of its tree (`modules.dep`) that the image lets `modprobe`
//! reach through KMM's documented link `/opt/lib/modules/<kernel>/host -> /lib/modules/<kernel>`
//! (made before `depmod`, which then lists the tree's modules under `host/`).
//!
//! The kernel's indexes are read from the DTK the image was built on (the lock names it, by
//! digest), through the registry client, its layers digest-checked and read once per run (the
//! layer cache), only when a module needs something the image does not hold; the names found
//! are kept in the cache (`trees/`), so a later run reads none of the DTK's layers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use super::scan::view::{Node, Resolved, View};
use super::scan::{ModuleFile, Scanner};
use super::{Checked, Finding, RegistryFailure};
use crate::domain::{Digest, Kernel};
use crate::lock::LockedImage;
use crate::registry::Client;
use crate::release::Cache;
use crate::text::escape_line;

/// A dependency `modprobe -d /opt` will not find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub module: String,
    pub dependency: String,
    /// The kernel's tree has it, but the image has no `host` link to reach it.
    pub in_tree: bool,
    pub kernel: String,
}

impl Missing {
    pub fn describe(&self) -> String {
        let e = |s: &str| escape_line(s).into_owned();
        let (m, d, k) = (e(&self.module), e(&self.dependency), e(&self.kernel));
        if self.in_tree {
            format!(
                "module `{m}` depends on `{d}`, a module of kernel `{k}`'s tree that `modprobe \
                 -d /opt` will not find: the image has no link /opt/lib/modules/{k}/host -> \
                 /lib/modules/{k} (make it before `depmod`, as KMM documents)"
            )
        } else {
            format!(
                "module `{m}` depends on `{d}`, which is neither in the image nor in kernel \
                 `{k}`'s tree: `modprobe -d /opt` will not find it"
            )
        }
    }
}

/// The module names of a kernel's own tree, as its DTK lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InTree {
    /// `modules.dep`: loadable modules.
    pub modules: BTreeSet<String>,
    /// `modules.builtin`: built into the kernel, always there.
    pub builtin: BTreeSet<String>,
}

/// What the checked modules of one image need from outside it.
pub struct Needs {
    kernel: String,
    /// `(module, dependency)` not in the image, in order.
    outside: Vec<(String, String)>,
    host: bool,
}

impl Needs {
    /// The dependencies of the `checked` modules that no module of the image's kernel
    /// directory (in `found`) provides, and whether `view` has KMM's `host` link.
    pub fn of(kernel: &Kernel, found: &[ModuleFile], checked: &[Checked], view: &View) -> Needs {
        let k = kernel.as_str();
        let in_dir: Vec<&ModuleFile> = found.iter().filter(|f| f.kernel_dir == k).collect();
        let held: BTreeSet<&str> = in_dir.iter().map(|f| f.name.as_str()).collect();
        let mut outside = Vec::new();
        for c in checked {
            let Some(Ok(info)) = in_dir
                .iter()
                .find(|f| f.name == c.module)
                .map(|f| f.info.as_ref())
            else {
                continue;
            };
            for d in &info.depends {
                if !held.contains(d.as_str()) {
                    outside.push((c.module.clone(), d.clone()));
                }
            }
        }
        Needs {
            kernel: k.to_string(),
            outside,
            host: has_host_link(view, k),
        }
    }

    /// The findings, reading the kernel's tree (`in_tree`) only when something is needed
    /// from outside the image.
    pub fn check(
        &self,
        in_tree: impl FnOnce() -> Result<Arc<InTree>, RegistryFailure>,
    ) -> Vec<Finding> {
        if self.outside.is_empty() {
            return Vec::new();
        }
        let tree = match in_tree() {
            Ok(t) => t,
            Err(e) => return vec![Finding::Registry(e)],
        };
        let mut findings = Vec::new();
        for (module, dependency) in &self.outside {
            if tree.builtin.contains(dependency) {
                continue;
            }
            let in_tree = tree.modules.contains(dependency);
            if in_tree && self.host {
                continue;
            }
            findings.push(Finding::DependencyMissing(Missing {
                module: module.clone(),
                dependency: dependency.clone(),
                in_tree,
                kernel: self.kernel.clone(),
            }));
        }
        findings
    }
}

/// Whether `/opt/lib/modules/<kernel>/host` is a link to `/lib/modules/<kernel>` (or
/// `/usr/lib/modules/<kernel>`: `/lib` is a link to `/usr/lib` on RHEL), read as the node will
/// see it: the node's tree is mounted there, whatever the image holds at that path.
fn has_host_link(view: &View, kernel: &str) -> bool {
    let dir = format!("opt/lib/modules/{kernel}");
    let Some(Node::Symlink(target)) = view.get(&format!("{dir}/host")) else {
        return false;
    };
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').collect()
    };
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(p),
        }
    }
    let end = parts.join("/");
    end == format!("lib/modules/{kernel}") || end == format!("usr/lib/modules/{kernel}")
}

/// The tree of `image`'s kernel, from the DTK it was built on; read once per run per DTK.
pub fn in_tree(
    client: &Client,
    cache: &Cache,
    image: &LockedImage,
) -> Result<Arc<InTree>, RegistryFailure> {
    type Slots = Mutex<HashMap<(Digest, String), Arc<Mutex<Option<Arc<InTree>>>>>>;
    static TREES: OnceLock<Slots> = OnceLock::new();
    let dtk = image
        .dtk
        .digest()
        .cloned()
        .unwrap_or_else(|| Digest::sha256(b""));
    let key = (dtk, image.kernel.to_string());
    let slot = {
        let mut slots = TREES
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Arc::clone(slots.entry(key).or_default())
    };
    let mut held = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tree) = &*held {
        return Ok(Arc::clone(tree));
    }
    let kernel = image.kernel.as_str();
    let tree = match image.dtk.digest().and_then(|d| cache.tree(d, kernel)) {
        Some(e) => InTree {
            modules: e.modules.into_iter().collect(),
            builtin: e.builtin.into_iter().collect(),
        },
        None => {
            let manifest = client
                .manifest(&image.dtk, image.arch)
                .map_err(|e| RegistryFailure::new(None, e))?;
            let mut scanner = Scanner::of_indexes();
            super::apply_layers(client, cache, &image.dtk, &manifest, &mut scanner)?;
            let tree = read_tree(scanner.view(), kernel);
            let list = |s: &BTreeSet<String>| s.iter().cloned().collect();
            // Read by the digest the lock pins: every layer was checked against it.
            if let Some(d) = image.dtk.digest() {
                cache.put_tree(d, kernel, list(&tree.modules), list(&tree.builtin));
            }
            tree
        }
    };
    let tree = Arc::new(tree);
    *held = Some(Arc::clone(&tree));
    Ok(tree)
}

/// The kernel's indexes in a DTK's final filesystem (through its links: `/lib` is one).
fn read_tree(view: &View, kernel: &str) -> InTree {
    let index = |file: &str| -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for root in ["lib/modules", "usr/lib/modules"] {
            let mut budget = super::scan::view::STEPS_MAX;
            if let Resolved::Found(p) =
                view.resolve(&format!("{root}/{kernel}/{file}"), &mut budget)
                && let Some(Node::Index(list)) = view.get(&p)
            {
                names.extend(list.iter().cloned());
            }
        }
        names
    };
    InTree {
        modules: index("modules.dep"),
        builtin: index("modules.builtin"),
    }
}

#[cfg(test)]
mod tests;
