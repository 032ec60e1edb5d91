//! A real registry process (distribution 2.8, Debian's `docker-registry`) on a free loopback port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A registry on `127.0.0.1:PORT`.
pub struct Registry {
    addr: String,
    child: Option<Child>,
    dir: PathBuf,
}

/// How to start a registry.
#[derive(Default, Clone)]
pub struct Options {
    /// An htpasswd file (bcrypt entries): the registry then requires basic auth.
    pub htpasswd: Option<PathBuf>,
    /// Keep the storage here instead of a fresh temporary directory (the demo caches it).
    pub storage: Option<PathBuf>,
    /// A fixed port instead of a free one.
    pub port: Option<u16>,
    /// Serve HTTPS with this PEM certificate (chain) and key instead of plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral loopback port");
    l.local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// Spawns `cmd` from a thread that never exits. `PR_SET_PDEATHSIG` fires when the *thread*
/// that forked the child exits, not the process: a registry forked from a test's thread would
/// be killed as soon as that test ends, under the feet of the tests still using it.
fn spawn_from_long_lived_thread(cmd: Command) -> std::io::Result<Child> {
    type Request = (Command, std::sync::mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Request>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
        });
        std::sync::Mutex::new(tx)
    });
    let (tx, rx) = std::sync::mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

impl Registry {
    /// The registry that `make test` started (`DRIVER_MATRIX_TEST_REGISTRY`), else one started
    /// for this process and shared by all its tests. It dies with the process.
    pub fn shared() -> &'static Registry {
        static SHARED: OnceLock<Registry> = OnceLock::new();
        SHARED.get_or_init(|| match std::env::var("DRIVER_MATRIX_TEST_REGISTRY") {
            Ok(addr) if !addr.is_empty() => Registry {
                addr,
                child: None,
                dir: PathBuf::new(),
            },
            _ => Registry::start(Options::default()).expect("starting docker-registry on loopback"),
        })
    }

    /// Starts a new registry process; it is stopped on drop, and killed if this process dies.
    pub fn start(opts: Options) -> std::io::Result<Registry> {
        let dir = std::env::temp_dir().join(format!(
            "driver-matrix-registry-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir)?;
        let port = opts.port.unwrap_or_else(free_port);
        let addr = format!("127.0.0.1:{port}");
        let storage = opts.storage.clone().unwrap_or_else(|| dir.join("storage"));
        std::fs::create_dir_all(&storage)?;
        let auth = match &opts.htpasswd {
            Some(p) => format!(
                "auth:\n  htpasswd:\n    realm: driver-matrix-test\n    path: {}\n",
                p.display()
            ),
            None => String::new(),
        };
        let tls = match &opts.tls {
            Some((cert, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls}{auth}",
            storage.display()
        );
        std::fs::write(dir.join("config.yml"), config)?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the registry when
        // the process that started it exits, so no test run leaves one behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = spawn_from_long_lived_thread(cmd).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot run docker-registry (apt-get install docker-registry): {e}"),
            )
        })?;
        let reg = Registry {
            addr,
            child: Some(child),
            dir,
        };
        reg.wait_ready(Duration::from_secs(20))?;
        Ok(reg)
    }

    fn wait_ready(&self, timeout: Duration) -> std::io::Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
                let mut buf = [0u8; 12];
                if s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut buf).is_ok() {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::io::Error::other(format!(
            "docker-registry did not answer on {} within {timeout:?}; its log: {}",
            self.addr,
            std::fs::read_to_string(self.log_path()).unwrap_or_default()
        )))
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The registry's log (requests appear here); empty for a registry started elsewhere.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("registry.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The working directory of a registry this process started.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
