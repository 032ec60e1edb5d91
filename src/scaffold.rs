//! What `driver-matrix init` writes for a kernel module source directory: a `matrix.toml` and
//! a DTK-based multi-stage `Containerfile`, with the module names read from the `obj-m` lines of
//! its `Kbuild` (or `Makefile`). Pure text; the command does the file I/O.

use std::path::Path;

/// The module names of every `obj-m` assignment, in order, without duplicates: `obj-m := a.o`
/// and `obj-m += b.o c.o` give `a`, `b`, `c`. Subdirectories (`obj-m += sub/`) are not
/// modules, and `obj-$(CONFIG_...)` lines build nothing unless the option is set: both are
/// skipped.
pub fn modules_from_kbuild(text: &str) -> Vec<String> {
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    let mut modules: Vec<String> = Vec::new();
    for line in joined.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some((lhs, rhs)) = line.split_once('=') else {
            continue;
        };
        let lhs = lhs.trim_end_matches([':', '+', '?']).trim();
        if lhs != "obj-m" {
            continue;
        }
        for word in rhs.split_whitespace() {
            let Some(stem) = word.strip_suffix(".o") else {
                continue;
            };
            let valid = !stem.is_empty()
                && stem
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if valid && !modules.iter().any(|m| m == stem) {
                modules.push(stem.to_string());
            }
        }
    }
    modules
}

/// A valid driver name from the directory's name: lowercase, other characters as `-`.
/// The driver's name from the directory's: a valid name close to it.
pub fn driver_name(dir: &Path) -> String {
    let base = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    crate::matrix::suggest_name(&base)
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn matrix_toml(name: &str, modules: &[String]) -> String {
    format!(
        r#"# Written by `driver-matrix init`: one driver, built from this directory on the Driver
# Toolkit (DTK) of every OpenShift release below. Reference: docs/matrix.md of driver-matrix;
# `driver-matrix schema > matrix.schema.json` and a `#:schema ./matrix.schema.json` first line
# give editors completion.
#
# Next: set `image` to a repository you can push to, then run
#   driver-matrix resolve   # reads each release's DTK and kernel into matrix.lock
#   driver-matrix plan      # the builds: one per kernel, shared by the releases that use it
#   driver-matrix build     # buildah builds and pushes, and records each image in matrix.lock

[openshift]
# The newest z-stream of a channel; add exact versions with `releases = ["4.16.3"]`.
channels = [{{ name = "stable-4.16", latest = 1 }}]
arch = ["x86_64"]

[[driver]]
name = "{name}"
context = "."
image = "quay.io/example/{name}"
# The first module is the one KMM loads (modprobe brings in its dependencies).
modules = [{modules}]
# The final stage's base image must have kmod; the Containerfile's default is UBI 9 minimal.
# build-args = {{ BASE_IMAGE = "registry.access.redhat.com/ubi9/ubi-minimal:latest" }}
"#,
        modules = quoted(modules)
    )
}

pub fn containerfile(modules: &[String]) -> String {
    let kos: Vec<String> = modules.iter().map(|m| format!("{m}.ko")).collect();
    format!(
        r#"# Written by `driver-matrix init`. driver-matrix (and KMM) pass DTK_IMAGE (the release's
# Driver Toolkit by digest) and KERNEL_FULL_VERSION (its kernel) to every build.
ARG DTK_IMAGE
ARG BASE_IMAGE=registry.access.redhat.com/ubi9/ubi-minimal:latest

# Build against the DTK's kernel headers: the exact kernel of the release's nodes.
FROM ${{DTK_IMAGE}} AS builder
ARG KERNEL_FULL_VERSION
WORKDIR /build
COPY . .
RUN make -C /lib/modules/${{KERNEL_FULL_VERSION}}/build M=/build modules \
 && mkdir -p /opt/lib/modules/${{KERNEL_FULL_VERSION}} \
 && cp {kos} /opt/lib/modules/${{KERNEL_FULL_VERSION}}/ \
 && depmod -b /opt ${{KERNEL_FULL_VERSION}}

# Ship only the modules, their depmod data and kmod: KMM runs `modprobe -d /opt {first}`,
# which looks in /opt/lib/modules/<kernel>/.
FROM ${{BASE_IMAGE}}
ARG KERNEL_FULL_VERSION
RUN microdnf install -y kmod && microdnf clean all
COPY --from=builder /opt/lib/modules/${{KERNEL_FULL_VERSION}}/ /opt/lib/modules/${{KERNEL_FULL_VERSION}}/
"#,
        kos = kos.join(" "),
        first = modules[0]
    )
}

#[cfg(test)]
mod tests {
    use super::modules_from_kbuild;

    #[test]
    fn modules_come_from_obj_m_in_order() {
        let text = "obj-m := hello.o\nobj-m += net_a.o \\\n  net-b.o # comment net_c.o\n\
                    hello-objs := a.o b.o\nobj-$(CONFIG_ACME) += acme.o\nobj-y += builtin.o\n\
                    obj-m += hello.o sub/\n";
        assert_eq!(modules_from_kbuild(text), ["hello", "net_a", "net-b"]);
    }

    #[test]
    fn makefiles_without_obj_m_give_no_module() {
        assert!(modules_from_kbuild("all:\n\tmake -C $(KDIR) M=$(PWD) modules\n").is_empty());
    }
}
