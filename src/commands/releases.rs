//! `driver-matrix releases CHANNEL [--arch A]`: the versions a channel offers, oldest first,
//! from the update graph (`-v` adds each payload).

use super::Context;
use crate::cli::ReleasesArgs;
use crate::domain::Arch;
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::matrix::{DEFAULT_GRAPH_URL, RegistrySettings};
use crate::registry::{Client, ClientOptions};
use crate::release::graph;

pub fn run(ctx: &Context, args: &ReleasesArgs) -> Result<ExitCode> {
    if ctx.global.offline {
        return Err(Error::usage(
            "listing a channel needs the update graph, which `--offline` forbids",
            Some("run without `--offline`".into()),
        ));
    }
    // The matrix is optional here: it only supplies the graph URL and the default arch.
    let matrix = if ctx.global.matrix.exists() {
        Some(ctx.matrix()?)
    } else {
        None
    };
    let (url, arch, registries) = match &matrix {
        Some(m) => (
            m.openshift.graph_url.clone(),
            args.arch
                .unwrap_or_else(|| m.openshift.arches.first().copied().unwrap_or(Arch::X86_64)),
            m.registries.clone(),
        ),
        None => (
            DEFAULT_GRAPH_URL.to_string(),
            args.arch.unwrap_or(Arch::X86_64),
            std::collections::BTreeMap::<String, RegistrySettings>::new(),
        ),
    };
    let client = Client::new(ClientOptions {
        registries,
        authfile: ctx.global.authfile.clone(),
        cert_dir: ctx.global.cert_dir.clone(),
        ..ClientOptions::default()
    })?;
    let nodes = graph::channel(&client, &url, &args.channel, arch)?;
    let mut out = String::new();
    for n in &nodes {
        match (&n.payload, ctx.global.verbose > 0) {
            (Some(p), true) => out.push_str(&format!("{}\t{p}\n", n.version)),
            _ => out.push_str(&format!("{}\n", n.version)),
        }
    }
    print!("{out}");
    Ok(ExitCode::Ok)
}
