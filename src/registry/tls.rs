//! TLS the way containers/image does it (containers-registries.conf(5), containers-certs.d(5)):
//!
//! - a host that is not `insecure` is reached over HTTPS, verified against the system roots plus
//!   the CA certificates (`*.crt`) of its certificate directory: `/etc/containers/certs.d/HOST/`
//!   and `/etc/docker/certs.d/HOST/`, or, with `--cert-dir DIR`, `DIR` itself for every host
//!   (what buildah's `--cert-dir` does);
//! - an `insecure` host is tried over HTTPS without certificate verification first, then over
//!   plain HTTP; the scheme that answered is kept for the rest of the run;
//! - no redirect goes from HTTPS to plain HTTP (a registry or CDN that tries is refused, so
//!   nothing meant for TLS is sent in clear).
//!
//! One `reqwest::Client` per host and verification mode, made when the host is first contacted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::RegistryError;

/// The directories containers/image reads per-host CA certificates from, in order.
const CERTS_D: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// How long the HTTPS probe of an insecure host may take before plain HTTP is tried.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a refused downgrade says (the error's causes carry it to messages).
pub(crate) const DOWNGRADE: &str = "refused a redirect from HTTPS to plain HTTP";

/// Per-host HTTP clients and, for insecure hosts, the scheme that answered.
pub(crate) struct Clients {
    cert_dir: Option<PathBuf>,
    timeout: Duration,
    clients: Mutex<HashMap<(String, bool), reqwest::Client>>,
    schemes: Mutex<HashMap<String, &'static str>>,
}

impl Clients {
    pub fn new(cert_dir: Option<PathBuf>, timeout: Duration) -> Clients {
        Clients {
            cert_dir,
            timeout,
            clients: Mutex::default(),
            schemes: Mutex::default(),
        }
    }

    /// The client for `host` (`host[:port]`); `verify` false skips certificate checks (insecure
    /// hosts only).
    pub fn get(&self, host: &str, verify: bool) -> Result<reqwest::Client, RegistryError> {
        let key = (host.to_string(), verify);
        if let Some(c) = lock(&self.clients).get(&key) {
            return Ok(c.clone());
        }
        let certs = if verify {
            self.certificates(host)?
        } else {
            Vec::new()
        };
        let client = build(self.timeout, certs, verify)?;
        Ok(lock(&self.clients).entry(key).or_insert(client).clone())
    }

    /// The scheme for `host`: `https`, unless it is insecure and does not speak TLS.
    pub async fn scheme(&self, host: &str, insecure: bool) -> &'static str {
        if !insecure {
            return "https";
        }
        if let Some(s) = lock(&self.schemes).get(host) {
            return s;
        }
        let probe = match self.get(host, false) {
            Ok(c) => c
                .get(format!("https://{host}/v2/"))
                .timeout(PROBE_TIMEOUT)
                .send()
                .await
                .is_ok(),
            Err(_) => false,
        };
        let scheme = if probe { "https" } else { "http" };
        *lock(&self.schemes)
            .entry(host.to_string())
            .or_insert(scheme)
    }

    /// The CA certificates for `host`, from every `*.crt` of its certificate directories.
    fn certificates(&self, host: &str) -> Result<Vec<reqwest::Certificate>, RegistryError> {
        let dirs: Vec<PathBuf> = match &self.cert_dir {
            Some(d) => vec![d.clone()],
            None => CERTS_D.iter().map(|d| Path::new(d).join(host)).collect(),
        };
        let mut out = Vec::new();
        for dir in dirs {
            for path in crt_files(&dir)? {
                let bad = |message: String| RegistryError::Certificate {
                    path: path.clone(),
                    message,
                };
                let pem = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
                if certs.is_empty() {
                    return Err(bad("holds no PEM certificate".into()));
                }
                out.extend(certs);
            }
        }
        Ok(out)
    }
}

/// The `*.crt` files of `dir`, sorted; none when it does not exist.
fn crt_files(dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(RegistryError::Certificate {
                path: dir.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt") && p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

fn build(
    timeout: Duration,
    certs: Vec<reqwest::Certificate>,
    verify: bool,
) -> Result<reqwest::Client, RegistryError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("driver-matrix/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(timeout)
        .redirect(redirect_policy());
    if !certs.is_empty() {
        b = b.tls_certs_merge(certs);
    }
    if !verify {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| RegistryError::Client {
        message: super::route::describe(&e),
    })
}

/// At most 10 redirects, never from HTTPS to plain HTTP.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("more than 10 redirects");
        }
        if downgrades(attempt.previous(), attempt.url()) {
            return attempt.error(DOWNGRADE);
        }
        attempt.follow()
    })
}

/// Whether going to `next` after `previous` leaves HTTPS for plain HTTP.
fn downgrades(previous: &[reqwest::Url], next: &reqwest::Url) -> bool {
    next.scheme() == "http" && previous.iter().any(|u| u.scheme() == "https")
}

/// `host[:port]` of a URL, as `[registries]` keys hosts.
pub(crate) fn host_port(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_to_http_is_a_downgrade() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(downgrades(&[u("https://a/v2/")], &u("http://b/blob")));
        assert!(downgrades(
            &[u("https://a/"), u("https://b/")],
            &u("http://a/x")
        ));
        assert!(!downgrades(&[u("http://a/")], &u("http://b/")));
        assert!(!downgrades(&[u("https://a/")], &u("https://cdn/")));
        assert_eq!(host_port(&u("http://127.0.0.1:5000/t")), "127.0.0.1:5000");
        assert_eq!(host_port(&u("https://auth.example/token")), "auth.example");
    }

    #[test]
    fn certificates_come_from_crt_files_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a certificate").unwrap();
        let c = Clients::new(Some(dir.path().to_path_buf()), Duration::from_secs(1));
        assert_eq!(c.certificates("h").unwrap().len(), 0);
        std::fs::write(dir.path().join("ca.crt"), "garbage").unwrap();
        let err = c.certificates("h").unwrap_err().to_string();
        assert!(err.contains("ca.crt"), "{err}");
    }

    /// A CA and a certificate for 127.0.0.1 it signed, made with `openssl`: (CA, cert, key).
    fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let run = |args: &str| {
            let out = std::process::Command::new("openssl")
                .current_dir(dir)
                .args(args.split(' '))
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ca -keyout ca.key -out ca.crt");
        run("req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout s.key -out s.csr");
        std::fs::write(dir.join("ext"), "subjectAltName = IP:127.0.0.1\n").unwrap();
        run(
            "x509 -req -in s.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out s.crt",
        );
        (dir.join("ca.crt"), dir.join("s.crt"), dir.join("s.key"))
    }

    /// An HTTPS server on loopback that answers every request with a redirect to `location`.
    fn redirector(cert: &Path, key: &Path, location: String) -> String {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use std::io::{Read, Write};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let config = std::sync::Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 4096];
                if tls.read(&mut buf).is_err() {
                    continue;
                }
                let reply = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = tls.write_all(reply.as_bytes());
                let _ = tls.flush();
            }
        });
        addr
    }

    #[test]
    fn a_redirect_from_https_to_plain_http_is_refused() {
        use driver_matrix_sandbox::faulty::{FaultServer, Reply};
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = certificates(dir.path());
        let plain = FaultServer::start().unwrap();
        plain.route("/x", Reply::ok("text/plain", b"in clear"));
        let addr = redirector(&cert, &key, format!("http://{}/x", plain.addr()));
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
        let clients = Clients::new(Some(certs), Duration::from_secs(5));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // reqwest's client must be built inside the runtime it will run on.
        let sent = rt.block_on(async {
            let client = clients.get(&addr, true).unwrap();
            client
                .get(format!("https://{addr}/v2/"))
                .header("Authorization", "Bearer secret")
                .send()
                .await
        });
        let err = sent.expect_err("the downgrade is refused");
        assert!(err.is_redirect(), "{err:?}");
        assert!(super::super::route::describe(&err).contains(DOWNGRADE));
        assert!(plain.requests().is_empty(), "{:?}", plain.requests());
    }
}
