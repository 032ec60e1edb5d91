//! `driver-matrix-sandbox`: a local OpenShift for `make demo`. Starts a registry that mirrors
//! quay.io (release payloads in the real format, DTK stand-ins with Debian's kernel headers, a
//! kmod base image) and a Cincinnati-style update graph, prints what it holds, writes
//! `<dir>/ready`, and serves until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use driver_matrix_sandbox::GraphServer;
use driver_matrix_sandbox::registry::{Options, Registry};
use driver_matrix_sandbox::world::{self, Paths};

const USAGE: &str = "\
usage: driver-matrix-sandbox [--dir DIR] [--registry HOST:PORT] [--graph HOST:PORT] [--prepare]

  --dir DIR            cache and state (default: .sandbox)
  --registry HOST:PORT the registry, a mirror of quay.io (default: 127.0.0.1:5000)
  --graph HOST:PORT    the update graph, /api/upgrades_info/v1/graph (default: 127.0.0.1:5001)
  --prepare            populate the registry storage, then exit instead of serving";

struct Args {
    dir: PathBuf,
    registry: String,
    graph: String,
    prepare: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        dir: PathBuf::from(".sandbox"),
        registry: "127.0.0.1:5000".into(),
        graph: "127.0.0.1:5001".into(),
        prepare: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--dir" => a.dir = PathBuf::from(value("--dir")?),
            "--registry" => a.registry = value("--registry")?,
            "--graph" => a.graph = value("--graph")?,
            "--prepare" => a.prepare = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok(a)
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn port_of(addr: &str) -> Result<u16, String> {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| format!("`{addr}` is not HOST:PORT"))
}

fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    let ready = args.dir.join("ready");
    let _ = std::fs::remove_file(&ready);
    // A registry already on the port would answer for ours, which would then fail to bind.
    let mut addrs = vec![args.registry.as_str()];
    if !args.prepare {
        addrs.push(args.graph.as_str());
    }
    for addr in addrs {
        std::net::TcpListener::bind(addr).map_err(|e| {
            format!("cannot listen on {addr}: {e} (is a sandbox already running? `make demo-clean` stops it)")
        })?;
    }
    let registry = Registry::start(Options {
        storage: Some(args.dir.join("registry")),
        port: Some(port_of(&args.registry)?),
        ..Options::default()
    })
    .map_err(|e| format!("cannot start the registry on {}: {e}", args.registry))?;
    let world = world::populate(registry.addr(), &Paths::in_repo(&args.dir))
        .map_err(|e| format!("cannot populate the sandbox: {e}"))?;
    // The example matrix signs hello-kmod with this pair (`.sandbox/signing/`).
    let (_, cert) = driver_matrix_sandbox::signing::ensure(&args.dir.join("signing"))
        .map_err(|e| format!("cannot make the module signing key: {e}"))?;
    let conf = args.dir.join("registries.conf");
    std::fs::write(&conf, world::registries_conf(registry.addr()))
        .map_err(|e| format!("{}: {e}", conf.display()))?;

    println!(
        "sandbox: registry {} (a mirror of quay.io)",
        registry.addr()
    );
    for d in world.dtks.values() {
        println!(
            "sandbox:   DTK {:<9} kernel {:<24} {}",
            d.suite,
            d.kernel,
            d.quay_ref()
        );
    }
    println!(
        "sandbox:   DTK {:<9} kernel {:<24} {} (RHEL {}, the RHEL 10 stream's)",
        world.rhel10.suite,
        world.rhel10.kernel,
        world.rhel10.quay_ref(),
        world.rhel10.rhel
    );
    for r in &world.releases {
        let mut notes = String::new();
        if let Some(node) = r.node_kernel.as_ref().filter(|n| **n != r.kernel) {
            notes.push_str(&format!(" (its nodes boot {node})"));
        }
        if let Some(s) = &r.rhel10 {
            notes.push_str(&format!(" + rhel-10 stream kernel {}", s.kernel));
        }
        println!(
            "sandbox:   release {:<7} {:<14} kernel {}{notes}",
            r.version, r.tag, r.kernel
        );
    }
    println!("sandbox:   final-stage base {}", world.kmod_base_ref());
    println!(
        "sandbox:   module signing certificate {} (key beside it)",
        cert.display()
    );
    if args.prepare {
        println!("sandbox: prepared in {:.0?}", started.elapsed());
        return Ok(());
    }

    let graph = GraphServer::start().map_err(|e| format!("cannot start the graph: {e}"))?;
    world.serve_graphs(&graph);
    world::forward(
        &args.graph,
        graph
            .url()
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default(),
    )
    .map_err(|e| format!("cannot listen on {}: {e}", args.graph))?;
    println!(
        "sandbox: update graph http://{}/api/upgrades_info/v1/graph",
        args.graph
    );
    println!(
        "sandbox: for buildah by hand: CONTAINERS_REGISTRIES_CONF={} reads quay.io from the mirror",
        conf.display()
    );
    println!("sandbox: ready in {:.0?}", started.elapsed());

    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    std::fs::write(&ready, format!("{}\n", std::process::id())).map_err(|e| e.to_string())?;
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(&ready);
    println!("sandbox: stopped");
    Ok(())
}

fn main() {
    let result = parse().and_then(run);
    if let Err(e) = result {
        eprintln!("driver-matrix-sandbox: {e}");
        if !e.starts_with("cannot") {
            eprintln!("{USAGE}");
        }
        std::process::exit(1);
    }
}
