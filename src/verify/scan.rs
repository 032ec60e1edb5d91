//! Finding kernel modules in an image: the layers are read base first, whiteouts applied, and
//! every `.ko` (or `.ko.xz`, `.ko.zst`, `.ko.gz`) under a `lib/modules/<kernel>/` directory
//! (`/opt/lib/modules` as KMM uses it, `/lib/modules` or `/usr/lib/modules`) kept with the kernel
//! directory it sits in, reduced to its `.modinfo` and its appended signature.
//!
//! A layer is whatever the registry serves, so reading one is bounded the way the resolver's
//! layer reader is (the same [`Limits`], [`Limits::DEEP`]): the decompressed stream may outgrow what was downloaded only
//! by a fixed ratio, GNU long-name, long-link and PAX headers are read (or skipped) only up to a
//! cap, one module is held at a time and only up to a cap (and no more than [`HELD_MAX`] bytes
//! of modules across the threads of a run; a compressed module is decompressed as it streams
//! out of the layer, into at most [`Limits::module_max`] bytes, with xz's and zstd's own memory
//! capped too), each module is reduced to its `.modinfo` and signature at once,
//! and the names kept between layers (modules, whiteouts) have a cap too. The layer streams
//! through: memory does not grow with its size.

use std::cell::Cell;
use std::collections::HashSet;
use std::io::{self, BufRead, Read};
use std::rc::Rc;
use std::sync::{Condvar, Mutex};

use super::modinfo::{self, ModInfo, ModInfoError};
use super::signature::{self, Signature, SignatureError};
use crate::release::cache::{LayerNode, NodeKind};
pub use crate::release::layer::Limits;
use crate::tarball::{self, Pending};

pub mod view;

use view::{Node, View};

/// Module bytes held at once by every scan of the process together.
pub const HELD_MAX: u64 = 128 << 20;

/// A module file of the image's final filesystem, reduced to what its `.modinfo` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Path in the image, without a leading `/`.
    pub path: String,
    /// The `<kernel>` directory it sits under.
    pub kernel_dir: String,
    /// Module name as the kernel sees it (`-` folded into `_`).
    pub name: String,
    /// Its `.modinfo`, or why it could not be read.
    pub info: Result<ModInfo, ModInfoError>,
    /// Its appended signature: `None` when it has none (or could not be decompressed).
    pub signature: Option<Result<Signature, SignatureError>>,
    /// The file it is, when it is a link (symbolic, or hard) to another: the path read.
    pub target: Option<String>,
}

impl ModuleFile {
    /// Bytes it keeps, for [`Limits::kept_max`].
    fn weight(&self) -> usize {
        let info = self.info.as_ref().map_or(64, |i| {
            let depends: usize = i.depends.iter().map(|d| d.len() + 8).sum();
            i.vermagic.len() + i.name.as_ref().map_or(0, String::len) + depends
        });
        let sig = match &self.signature {
            Some(Ok(s)) => s.weight(),
            _ => 64,
        };
        let target = self.target.as_ref().map_or(0, String::len);
        self.path.len() + self.kernel_dir.len() + self.name.len() + info + sig + target + 64
    }

    /// Its path as a human reads it: `opt/.../hello.ko -> /opt/.../evil.ko` for a link.
    pub fn shown(&self) -> String {
        match &self.target {
            Some(t) => format!("{} -> /{t}", self.path),
            None => self.path.clone(),
        }
    }
}

/// How a module file is compressed, by its name (as `depmod` and `modprobe` tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    Plain,
    Xz,
    Zstd,
    Gzip,
}

const SUFFIXES: [(&str, Packing); 4] = [
    (".ko", Packing::Plain),
    (".ko.xz", Packing::Xz),
    (".ko.zst", Packing::Zstd),
    (".ko.gz", Packing::Gzip),
];

fn packing(file: &str) -> Option<(&str, Packing)> {
    SUFFIXES
        .iter()
        .find_map(|(suffix, p)| Some((file.strip_suffix(suffix)?, *p)))
}

/// The module name of a `.ko` (or `.ko.xz`, `.ko.zst`, `.ko.gz`) file name, `-` folded into
/// `_` as the kernel does.
pub fn module_name(file: &str) -> Option<String> {
    let (stem, _) = packing(file)?;
    Some(stem.replace('-', "_"))
}

/// Largest zstd window accepted (32 MiB; `zstd -19` uses 8 MiB): the decoder's memory.
const ZSTD_WINDOW_LOG_MAX: u32 = 25;
/// liblzma's memory limit for one `.ko.xz` (kbuild compresses with a 1 MiB dictionary).
const XZ_MEMLIMIT: u64 = 64 << 20;

/// `input` decompressed into at most `max` bytes; `Err` names why it could not be.
fn decompress(packing: Packing, input: impl Read, max: u64) -> io::Result<Result<Vec<u8>, String>> {
    let decoder: Box<dyn Read + '_> = match packing {
        Packing::Plain => Box::new(input),
        Packing::Xz => {
            let stream = xz2::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, 0)
                .map_err(io::Error::other)?;
            Box::new(xz2::read::XzDecoder::new_stream(input, stream))
        }
        Packing::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(input)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Box::new(d)
        }
        Packing::Gzip => Box::new(flate2::read::GzDecoder::new(input)),
    };
    let mut bytes = Vec::new();
    match decoder.take(max + 1).read_to_end(&mut bytes) {
        Ok(_) if bytes.len() as u64 > max => Ok(Err(format!(
            "it decompresses to more than {} MiB",
            max >> 20
        ))),
        Ok(_) => Ok(Ok(bytes)),
        Err(e) => Ok(Err(format!("it does not decompress: {e}"))),
    }
}

/// `(kernel_dir, file name)` when `path` is a module under a modules directory.
fn classify(path: &str) -> Option<(String, String)> {
    for prefix in ["opt/lib/modules/", "lib/modules/", "usr/lib/modules/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let (kernel, tail) = rest.split_once('/')?;
            let file = tail.rsplit('/').next()?;
            if packing(file).is_some() && !kernel.is_empty() {
                return Some((kernel.to_string(), file.to_string()));
            }
        }
    }
    None
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Fails once the decompressed stream outgrows the downloaded one by more than the limits allow.
struct Ratio<R> {
    inner: R,
    compressed: Rc<Cell<u64>>,
    out: u64,
    limits: Limits,
}

impl<R: Read> Read for Ratio<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        let limits = &self.limits;
        crate::tarball::check_ratio(self.out, self.compressed.get(), limits.ratio, limits.slack)?;
        Ok(n)
    }
}

/// What a module is reduced to: its `.modinfo` and its appended signature.
type Reduced = (
    Result<ModInfo, ModInfoError>,
    Option<Result<Signature, SignatureError>>,
);

/// The process-wide budget of module bytes held in memory.
static HELD: Mutex<u64> = Mutex::new(0);
static RELEASED: Condvar = Condvar::new();

/// A share of [`HELD_MAX`], given back when dropped.
struct Held(u64);

impl Held {
    /// Waits until `bytes` (at most [`HELD_MAX`]) fit in the budget.
    fn take(bytes: u64) -> Held {
        let bytes = bytes.min(HELD_MAX);
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        while *held + bytes > HELD_MAX {
            held = RELEASED.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        *held += bytes;
        Held(bytes)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        *held -= self.0;
        RELEASED.notify_all();
    }
}

/// What a scan reads of a layer's files under the modules directories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Modules, reduced to their `.modinfo` and signature (an image's own modules).
    #[default]
    Modules,
    /// Kernels' `modules.dep` and `modules.builtin` only, modules left unread (a DTK's tree).
    Indexes,
}

/// The image's modules, from its layers in manifest order (base first).
pub struct Scanner {
    limits: Limits,
    mode: Mode,
    view: View,
    kept: usize,
}

impl Default for Scanner {
    /// A scanner of modules within [`Limits::DEEP`].
    fn default() -> Self {
        Scanner {
            limits: Limits::DEEP,
            mode: Mode::default(),
            view: View::default(),
            kept: 0,
        }
    }
}

/// One entry of a layer in the view's region, in the layer's order.
#[derive(Debug, Clone)]
enum Change {
    Add(String, Node),
    /// A hard link, to the earlier entry named.
    Hardlink(String, String),
}

/// What one layer adds and hides, as [`Scanner::read_layer`] found it: a layer's contents
/// are fixed by its digest, so a layer read whole once need not be read again.
#[derive(Debug, Clone, Default)]
pub struct LayerChanges {
    removed: HashSet<String>,
    opaque: HashSet<String>,
    changes: Vec<Change>,
    /// Whether it holds a module file or a kernel's index (read or not, by the mode).
    modules: bool,
    /// Bytes of names this layer keeps ([`Limits::kept_max`]).
    kept: usize,
}

/// A layer's entries as the cache keeps them: removed paths, opaque directories, the rest.
pub type Portable = (Vec<String>, Vec<String>, Vec<LayerNode>);

impl LayerChanges {
    /// Bytes of names it keeps: what holding it costs.
    pub fn weight(&self) -> usize {
        self.kept
    }

    /// What a layer without modules (or kernel indexes) changes, the same in every [`Mode`]:
    /// its removed paths and opaque directories, each sorted, and its entries in the view's
    /// region, in order; `None` for a layer that holds modules.
    pub fn portable(&self) -> Option<Portable> {
        if self.modules {
            return None;
        }
        let sorted = |set: &HashSet<String>| {
            let mut v: Vec<String> = set.iter().cloned().collect();
            v.sort();
            v
        };
        let mut nodes = Vec::new();
        for c in &self.changes {
            let (path, kind, target) = match c {
                Change::Add(p, Node::Dir) => (p, NodeKind::Dir, None),
                Change::Add(p, Node::Symlink(t)) => (p, NodeKind::Symlink, Some(t.clone())),
                Change::Hardlink(p, t) => (p, NodeKind::Hardlink, Some(t.clone())),
                Change::Add(p, Node::File) => (p, NodeKind::File, None),
                // Modules and indexes make `modules` true; a hard link's copy is a `Hardlink`.
                Change::Add(..) => return None,
            };
            nodes.push(LayerNode {
                path: path.clone(),
                kind,
                target,
            });
        }
        Some((sorted(&self.removed), sorted(&self.opaque), nodes))
    }

    /// The changes of a layer without modules, from [`Self::portable`]; entries out of the
    /// view's region (a cache entry is data, not a command) are dropped.
    pub fn of_portable(removed: Vec<String>, opaque: Vec<String>, nodes: Vec<LayerNode>) -> Self {
        let mut kept = removed.iter().chain(&opaque).map(String::len).sum();
        let mut changes = Vec::new();
        for n in nodes {
            let path = view::normal(&n.path).to_string();
            let target = n.target.unwrap_or_default();
            let long = path.len() > view::PATH_MAX || target.len() > view::PATH_MAX;
            if !view::in_region(&path) || path.is_empty() || long {
                continue;
            }
            kept += path.len() + target.len() + 16;
            changes.push(match n.kind {
                NodeKind::Dir => Change::Add(path, Node::Dir),
                NodeKind::File => Change::Add(path, Node::File),
                NodeKind::Symlink => Change::Add(path, Node::Symlink(target)),
                NodeKind::Hardlink => Change::Hardlink(path, target),
            });
        }
        LayerChanges {
            removed: removed.into_iter().collect(),
            opaque: opaque.into_iter().collect(),
            changes,
            modules: false,
            kept,
        }
    }
}

/// Largest `modules.dep` or `modules.builtin` read (a RHEL kernel's are under 1 MiB).
const INDEX_MAX: u64 = 16 << 20;

impl Scanner {
    pub fn with_limits(limits: Limits) -> Self {
        Scanner {
            limits,
            ..Scanner::default()
        }
    }

    /// A scanner of kernels' indexes ([`Mode::Indexes`]).
    pub fn of_indexes() -> Self {
        Scanner {
            mode: Mode::Indexes,
            ..Scanner::default()
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Applies one layer on top of what the layers before it left.
    pub fn layer<R: Read>(&mut self, blob: R) -> io::Result<()> {
        let changes = self.read_layer(blob)?;
        self.apply_layer(&changes)
    }

    /// Reads one layer to its last tar entry: what it adds and hides, given what the layers
    /// before it left (for the cap on names kept).
    pub fn read_layer<R: Read>(&self, blob: R) -> io::Result<LayerChanges> {
        let limits = self.limits;
        let (mut buffered, compressed) = tarball::counted(blob);
        buffered.fill_buf()?;
        let decoded = Ratio {
            inner: crate::release::layer::decoder(buffered)?,
            compressed,
            out: 0,
            limits,
        };
        let mut archive = tar::Archive::new(decoded);
        let mut changes = LayerChanges::default();
        let mut pending = Pending::default();
        for entry in archive.entries()?.raw(true) {
            let mut entry = entry?;
            if self.extension(&mut entry, &mut pending)? {
                continue;
            }
            let taken = std::mem::take(&mut pending);
            self.entry(&mut entry, taken, &mut changes)?;
        }
        Ok(changes)
    }

    fn extension<R: Read>(
        &self,
        entry: &mut tar::Entry<R>,
        pending: &mut Pending,
    ) -> io::Result<bool> {
        crate::tarball::extension(entry, pending, self.limits.headers())
    }

    /// Takes note of one entry of a layer: a whiteout, an entry in the view's region, or
    /// nothing of interest.
    fn entry<R: Read>(
        &self,
        entry: &mut tar::Entry<R>,
        pending: Pending,
        changes: &mut LayerChanges,
    ) -> io::Result<()> {
        let link = tarball::link_target(entry, &pending);
        let (path, size) = crate::tarball::path_and_size(entry, pending)?;
        let path = view::normal(&path).to_string();
        let (dir, file) = match path.rsplit_once('/') {
            Some((d, f)) => (format!("{d}/"), f),
            None => (String::new(), path.as_str()),
        };
        if file == ".wh..wh..opq" {
            return self.keep(changes, dir.len(), |c| c.opaque.insert(dir));
        }
        if let Some(hidden) = file.strip_prefix(".wh.") {
            let hidden = format!("{dir}{hidden}");
            return self.keep(changes, hidden.len(), |c| c.removed.insert(hidden));
        }
        if size > self.limits.entry_max {
            return Err(invalid(format!(
                "entry `{path}` claims {size} bytes, over the {} GiB limit",
                self.limits.entry_max >> 30
            )));
        }
        if path.is_empty() || !view::in_region(&path) {
            return Ok(());
        }
        if path.len() > view::PATH_MAX || link.as_ref().is_some_and(|l| l.len() > view::PATH_MAX) {
            return Err(invalid(format!(
                "an entry under the modules directories whose path or link is over {} bytes",
                view::PATH_MAX
            )));
        }
        let kind = entry.header().entry_type();
        let weight = path.len() + link.as_ref().map_or(0, String::len) + 16;
        let change = match link {
            Some(target) if kind.is_hard_link() => Change::Hardlink(path, target),
            Some(target) => Change::Add(path, Node::Symlink(target)),
            None if kind.is_dir() => Change::Add(path, Node::Dir),
            None if !kind.is_file() => Change::Add(path, Node::File),
            None => return self.file(entry, path, size, changes),
        };
        self.keep(changes, weight, |c| c.changes.push(change))
    }

    /// A regular file in the view's region: a module (read in [`Mode::Modules`]), a kernel's
    /// index (read in [`Mode::Indexes`]), or a file whose contents do not matter.
    fn file<R: Read>(
        &self,
        entry: &mut tar::Entry<R>,
        path: String,
        size: u64,
        changes: &mut LayerChanges,
    ) -> io::Result<()> {
        let weight = path.len() + 16;
        if let Some((kernel_dir, file_name)) = classify(&path) {
            changes.modules = true;
            if self.mode == Mode::Indexes {
                return self.keep(changes, weight, |c| {
                    c.changes.push(Change::Add(path, Node::File))
                });
            }
            let (info, signature) = self.modinfo(entry, &path, &file_name, size)?;
            let module = ModuleFile {
                name: module_name(&file_name).expect("classify only accepts module files"),
                path: path.clone(),
                kernel_dir,
                info,
                signature,
                target: None,
            };
            let node = Node::Module(Box::new(module));
            return self.keep(changes, weight + node.weight(), |c| {
                c.changes.push(Change::Add(path, node))
            });
        }
        if let Some(kind) = index_kind(&path) {
            changes.modules = true;
            if self.mode == Mode::Indexes {
                let names = read_index(entry, &path, size, kind)?;
                let node = Node::Index(names);
                return self.keep(changes, weight + node.weight(), |c| {
                    c.changes.push(Change::Add(path, node))
                });
            }
        }
        self.keep(changes, weight, |c| {
            c.changes.push(Change::Add(path, Node::File))
        })
    }
    /// Reads one module, holding its bytes only while its `.modinfo` and signature are
    /// parsed. A compressed one holds up to [`Limits::module_max`] decompressed bytes.
    fn modinfo<R: Read>(
        &self,
        entry: &mut tar::Entry<R>,
        path: &str,
        file: &str,
        size: u64,
    ) -> io::Result<Reduced> {
        let max = self.limits.module_max;
        if size > max {
            return Err(invalid(format!(
                "`{path}` claims {size} bytes; no module is over {} MiB",
                max >> 20
            )));
        }
        let packing = packing(file).map_or(Packing::Plain, |(_, p)| p);
        let (_held, bytes) = if packing == Packing::Plain {
            let held = Held::take(size);
            let mut bytes = Vec::with_capacity(size as usize);
            entry.take(size).read_to_end(&mut bytes)?;
            (held, Ok(bytes))
        } else {
            // The decoder's own memory (a zstd window, an xz dictionary) counts as much again.
            let held = Held::take(max.saturating_mul(2));
            (held, decompress(packing, entry.take(size), max)?)
        };
        Ok(match bytes {
            Ok(bytes) => (modinfo::read(&bytes), signature::read(&bytes)),
            Err(why) => (Err(ModInfoError::Compressed(why)), None),
        })
    }

    /// Records something kept beyond this entry, within [`Limits::kept_max`].
    fn keep<T>(
        &self,
        changes: &mut LayerChanges,
        bytes: usize,
        add: impl FnOnce(&mut LayerChanges) -> T,
    ) -> io::Result<()> {
        changes.kept += bytes;
        self.within_kept(changes)?;
        add(changes);
        Ok(())
    }

    fn within_kept(&self, changes: &LayerChanges) -> io::Result<()> {
        if self.kept + changes.kept > self.limits.kept_max {
            return Err(invalid(format!(
                "the image names more modules and whiteouts than {} MiB hold",
                self.limits.kept_max >> 20
            )));
        }
        Ok(())
    }

    /// Applies a layer's changes on top of what the layers before it left. Whiteouts and
    /// opaque directories hide what lower layers had, not this layer's files.
    pub fn apply_layer(&mut self, changes: &LayerChanges) -> io::Result<()> {
        self.within_kept(changes)?;
        self.view.hide(&changes.removed, &changes.opaque);
        for c in &changes.changes {
            match c {
                Change::Add(path, node) => self.view.add(path, node.clone()),
                Change::Hardlink(path, target) => self.view.link(path, target),
            }
        }
        self.kept = self.view.weight();
        Ok(())
    }

    /// The final filesystem the layers applied so far make.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Every module of the final filesystem, by path.
    pub fn finish(self) -> Vec<ModuleFile> {
        self.view.modules()
    }
}

/// Which index `path` is: a kernel's `modules.dep` or `modules.builtin`, right in its directory.
fn index_kind(path: &str) -> Option<Index> {
    let (dir, file) = path.rsplit_once('/')?;
    let (root, kernel) = dir.rsplit_once('/')?;
    if !view::ROOTS.contains(&root) || kernel.is_empty() {
        return None;
    }
    match file {
        "modules.dep" => Some(Index::Dep),
        "modules.builtin" => Some(Index::Builtin),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Index {
    Dep,
    Builtin,
}

/// The module names a `modules.dep` (`kernel/.../x.ko.xz: deps`) or `modules.builtin`
/// (`kernel/.../x.ko`) lists, sorted.
fn read_index<R: Read>(
    entry: &mut R,
    path: &str,
    size: u64,
    kind: Index,
) -> io::Result<Vec<String>> {
    if size > INDEX_MAX {
        return Err(invalid(format!(
            "`{path}` claims {size} bytes; no kernel's is over {} MiB",
            INDEX_MAX >> 20
        )));
    }
    let mut bytes = Vec::new();
    entry.take(INDEX_MAX).read_to_end(&mut bytes)?;
    Ok(index_names(&String::from_utf8_lossy(&bytes), kind))
}

fn index_names(text: &str, kind: Index) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let file = match kind {
                Index::Dep => line.split_once(':')?.0,
                Index::Builtin => line,
            };
            module_name(file.trim().rsplit('/').next()?)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests;
