//! The image's final filesystem where modules are looked for, as a container runtime makes it
//! from the layers (the OCI image spec's changeset rules, as overlayfs applies them):
//!
//! - layers apply base first; an entry replaces whatever a lower layer had at its path (a
//!   non-directory also everything under it), and makes every directory on its way one;
//! - a whiteout `.wh.NAME` hides `NAME` (and all under it) of the lower layers, an opaque
//!   `.wh..wh..opq` every lower entry of its directory; neither hides the layer's own entries;
//! - a hard link is the file its target (an earlier entry) is at that point of the layer;
//! - a symbolic link is followed inside the image root, as the runtime's `open` does for
//!   `modprobe -d /opt`: an absolute target starts at the image root, `..` never climbs above
//!   it, at most [`HOPS_MAX`] links are followed.
//!
//! Only the *region* of the filesystem where modules can be found is kept: the modules
//! directories ([`ROOTS`]), everything under them, and the directories on the way to them.
//! Inside the region every entry of every layer is kept, so the view is exact there; a link
//! that leads out of it leads to a file this view cannot judge, and is reported as such.

use std::collections::{BTreeMap, HashSet};

use super::ModuleFile;
use crate::verify::modinfo::ModInfoError;

/// The modules directories, without a leading `/`.
pub const ROOTS: [&str; 3] = ["opt/lib/modules", "lib/modules", "usr/lib/modules"];

/// Symbolic links followed while resolving one path (Linux's `MAXSYMLINKS`).
pub const HOPS_MAX: usize = 40;

/// Longest path (Linux's `PATH_MAX`): a longer entry or link target in the region is refused.
pub const PATH_MAX: usize = 4096;

/// Path components followed for all the modules of one image together.
pub const STEPS_MAX: usize = 1 << 20;

/// Whether `path` (no leading `/`, no `.` or `..`) is in the region the view keeps.
pub fn in_region(path: &str) -> bool {
    path.is_empty()
        || ROOTS.iter().any(|r| {
            let under = path.strip_prefix(r).is_some_and(|t| t.starts_with('/'));
            let above = r.strip_prefix(path).is_some_and(|t| t.starts_with('/'));
            *r == path || under || above
        })
}

/// What one path of the view holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    /// A module file, reduced to its `.modinfo` and signature.
    Module(Box<ModuleFile>),
    /// A regular file (or a device, a fifo) whose contents were not read.
    File,
    /// A hard link to a file outside the region: its contents were not read.
    Linked(String),
    /// A kernel's `modules.dep` or `modules.builtin`: the module names it lists.
    Index(Vec<String>),
    Symlink(String),
}

impl Node {
    /// Bytes it keeps, beyond its path.
    pub fn weight(&self) -> usize {
        match self {
            Node::Dir | Node::File => 0,
            Node::Module(m) => m.weight(),
            Node::Linked(t) | Node::Symlink(t) => t.len(),
            Node::Index(names) => names.iter().map(|n| n.len() + 8).sum(),
        }
    }
}

/// Where resolving a path ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// An entry of the view, at this path.
    Found(String),
    /// Nothing at this path (or a file on the way where a directory should be).
    Dangling(String),
    /// A path out of the region: what is there is not kept.
    Leaves(String),
    /// More than [`HOPS_MAX`] links.
    Loop,
    /// A path over [`PATH_MAX`] bytes, or more steps than the budget allows.
    TooLong,
}

/// `path` without `./`, leading `/`, or a trailing `/`.
pub fn normal(path: &str) -> &str {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
}

/// The final filesystem, in the region, as the layers applied so far left it.
#[derive(Debug, Default, Clone)]
pub struct View {
    nodes: BTreeMap<String, Node>,
}

impl View {
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Bytes of names and contents kept.
    pub fn weight(&self) -> usize {
        self.nodes.iter().map(|(p, n)| p.len() + n.weight()).sum()
    }

    /// Hides what a layer's whiteouts and opaque directories (`dir/`, `""` for the root) hide.
    pub fn hide(&mut self, removed: &HashSet<String>, opaque: &HashSet<String>) {
        if removed.is_empty() && opaque.is_empty() {
            return;
        }
        let hidden = |p: &str| {
            opaque.contains("")
                || removed.contains(p)
                || p.match_indices('/')
                    .any(|(i, _)| removed.contains(&p[..i]) || opaque.contains(&p[..=i]))
        };
        self.nodes.retain(|p, _| !hidden(p));
    }

    /// Removes `path` and everything under it.
    fn remove_tree(&mut self, path: &str) {
        let under = format!("{path}/");
        let doomed: Vec<String> = self
            .nodes
            .range(path.to_string()..)
            .map(|(p, _)| p)
            .take_while(|p| p.starts_with(path))
            .filter(|p| p.as_str() == path || p.starts_with(&under))
            .cloned()
            .collect();
        for p in doomed {
            self.nodes.remove(&p);
        }
    }

    /// Adds one entry of a layer (after the layer's whiteouts were applied).
    pub fn add(&mut self, path: &str, node: Node) {
        // Every directory on the way is one now: a lower link or file there is replaced.
        for (i, _) in path.match_indices('/') {
            if matches!(self.nodes.get(&path[..i]), Some(n) if *n != Node::Dir) {
                self.nodes.remove(&path[..i]);
            }
        }
        match (self.nodes.get(path), &node) {
            (Some(Node::Dir), Node::Dir) => {}
            _ => {
                self.remove_tree(path);
                self.nodes.insert(path.to_string(), node);
            }
        }
    }

    /// Adds a hard link at `path` to `target`, an earlier entry: the same file.
    pub fn link(&mut self, path: &str, target: &str) {
        let target = normal(target);
        let node = match self.nodes.get(target) {
            Some(Node::Module(m)) => {
                let mut m = m.clone();
                m.target = Some(m.target.clone().unwrap_or_else(|| target.to_string()));
                Node::Module(m)
            }
            Some(other) => other.clone(),
            None if in_region(target) => Node::File,
            None => Node::Linked(target.to_string()),
        };
        self.add(path, node);
    }

    /// Follows `path` through the view's symbolic links (the last one too), in at most
    /// `budget` steps (one per path component), taken from it.
    pub fn resolve(&self, path: &str, budget: &mut usize) -> Resolved {
        let mut todo: Vec<&str> = path.rsplit('/').collect();
        // The path so far, and where it ended before each of its components.
        let mut here = String::new();
        let mut ends: Vec<usize> = Vec::new();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            if *budget == 0 {
                return Resolved::TooLong;
            }
            *budget -= 1;
            match part {
                "" | "." => continue,
                ".." => {
                    here.truncate(ends.pop().unwrap_or(0));
                    continue;
                }
                _ => {
                    ends.push(here.len());
                    if !here.is_empty() {
                        here.push('/');
                    }
                    here.push_str(part);
                }
            }
            if here.len() > PATH_MAX {
                return Resolved::TooLong;
            }
            if !in_region(&here) {
                let rest: Vec<&str> = todo.iter().rev().copied().collect();
                let to: Vec<&str> = std::iter::once(here.as_str()).chain(rest).collect();
                return Resolved::Leaves(to.join("/"));
            }
            match self.nodes.get(&here) {
                Some(Node::Symlink(target)) => {
                    hops += 1;
                    if hops > HOPS_MAX {
                        return Resolved::Loop;
                    }
                    here.truncate(ends.pop().unwrap_or(0));
                    if target.starts_with('/') {
                        here.clear();
                        ends.clear();
                    }
                    todo.extend(target.rsplit('/'));
                }
                Some(Node::Dir) | None => {}
                Some(_) if !todo.iter().all(|p| p.is_empty() || *p == ".") => {
                    return Resolved::Dangling(here);
                }
                Some(_) => {}
            }
        }
        match self.nodes.get(&here) {
            Some(_) => Resolved::Found(here),
            None => Resolved::Dangling(here),
        }
    }

    /// Every module file of the view: each file (or link) with a module's name in a kernel's
    /// directory under a modules directory, judged by the file it resolves to. A directory
    /// is not descended into through a link (`host` is the kernel's own tree, not the image's).
    pub fn modules(&self) -> Vec<ModuleFile> {
        let mut out = Vec::new();
        let mut budget = STEPS_MAX;
        for (path, node) in &self.nodes {
            let Some((kernel_dir, file)) = super::classify(path) else {
                continue;
            };
            if matches!(node, Node::Dir) {
                continue;
            }
            let name = super::module_name(&file).unwrap_or_default();
            let judged = |info, signature, target| ModuleFile {
                path: path.clone(),
                kernel_dir: kernel_dir.clone(),
                name: name.clone(),
                info,
                signature,
                target,
            };
            let unjudged = |why: String| judged(Err(ModInfoError::Link(why)), None, None);
            let file = match self.resolve(path, &mut budget) {
                Resolved::Found(end) => match &self.nodes[&end] {
                    Node::Module(m) => {
                        let target = (end != *path).then_some(end).or(m.target.clone());
                        judged(m.info.clone(), m.signature.clone(), target)
                    }
                    Node::Dir => continue,
                    Node::Linked(t) => unjudged(format!(
                        "it is a hard link to `/{t}`, out of the modules directories; verify \
                         judges only modules stored under them"
                    )),
                    _ => unjudged(format!("it is `/{end}`, which is not a module file")),
                },
                Resolved::Leaves(to) => unjudged(format!(
                    "it is a link out of the modules directories, to `/{to}`; verify judges \
                     only modules stored under them"
                )),
                Resolved::Dangling(to) => unjudged(format!(
                    "it is a link to `/{to}`, which is not in the image"
                )),
                Resolved::Loop => unjudged(format!("its links loop (over {HOPS_MAX} of them)")),
                Resolved::TooLong => unjudged(format!(
                    "its links lead over {PATH_MAX} bytes, or through more than verify follows"
                )),
            };
            out.push(file);
        }
        out
    }
}

#[cfg(test)]
mod tests;
