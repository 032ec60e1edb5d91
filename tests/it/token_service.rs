//! A registry's credentials reach only its host. Its Bearer challenge may name a token service
//! (realm) on another host: that service gets the credentials the auth file holds for *its*
//! host, or none, never the registry's (containers/image would send the registry's to any
//! HTTPS realm; docs/registries.md says why driver-matrix does not). A realm on the registry's
//! own host gets the registry's credentials as before.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use driver_matrix::domain::{Arch, ImageRef, RegistrySettings};
use driver_matrix::registry::{Client, ClientOptions, RegistryError};

/// Each request's path and `Authorization` header.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A loopback server that answers `/v2/...` with a Bearer challenge naming `realm` (`None`:
/// its own `/token`) and `/token` with a token, and records each request's path and
/// `Authorization` header.
#[derive(Clone)]
struct Server {
    addr: String,
    seen: Seen,
}

impl Server {
    fn start(realm: Option<String>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = Server {
            addr: addr.clone(),
            seen: Arc::default(),
        };
        let realm = realm.unwrap_or_else(|| format!("http://{addr}/token"));
        let s = server.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                // A TLS handshake first (insecure hosts are tried over HTTPS): not HTTP, dropped.
                if reader.read_line(&mut line).is_err() || !line.ends_with("HTTP/1.1\r\n") {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut auth = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        auth = Some(v.trim().to_string());
                    }
                }
                s.seen.lock().unwrap().push((path.clone(), auth));
                let (status, extra, body) = if path.starts_with("/token") {
                    ("200 OK", String::new(), r#"{"token":"t0k3n"}"#.to_string())
                } else {
                    (
                        "401 Unauthorized",
                        format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"s\"\r\n"),
                        String::new(),
                    )
                };
                let mut out = conn;
                let _ = write!(
                    out,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\n{extra}Connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        server
    }

    /// The `Authorization` of every token request.
    fn token_auth(&self) -> Vec<Option<String>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.starts_with("/token"))
            .map(|(_, a)| a.clone())
            .collect()
    }
}

fn basic(user_pass: &str) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, user_pass)
}

/// A client with `auths` (host → `user:pass`) in its auth file, every host insecure (plain
/// HTTP on loopback).
fn client(dir: &std::path::Path, auths: &[(&str, &str)], hosts: &[&str]) -> Client {
    let entries: serde_json::Map<String, serde_json::Value> = auths
        .iter()
        .map(|(h, up)| (h.to_string(), serde_json::json!({ "auth": basic(up) })))
        .collect();
    let file = dir.join("auth.json");
    std::fs::write(&file, serde_json::json!({ "auths": entries }).to_string()).unwrap();
    let registries: BTreeMap<String, RegistrySettings> = hosts
        .iter()
        .map(|h| {
            let s = RegistrySettings {
                mirror: None,
                insecure: true,
            };
            (h.to_string(), s)
        })
        .collect();
    Client::new(ClientOptions {
        registries,
        authfile: Some(file),
        timeout: Duration::from_secs(5),
        retries: 0,
        ..ClientOptions::default()
    })
    .unwrap()
}

fn fetch(client: &Client, registry: &Server) -> RegistryError {
    let r: ImageRef = format!("{}/a/b:t", registry.addr).parse().unwrap();
    client.manifest(&r, Arch::X86_64).unwrap_err()
}

#[test]
fn a_token_service_on_another_host_never_gets_the_registrys_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let token = Server::start(None);
    let registry = Server::start(Some(format!("http://{}/token", token.addr)));
    let hosts = [registry.addr.as_str(), token.addr.as_str()];

    // Credentials for the registry only: the token is asked for without any.
    let c = client(dir.path(), &[(&registry.addr, "reg:secret")], &hosts);
    let err = fetch(&c, &registry);
    assert_eq!(token.token_auth(), [None], "{err:?}");
    let shown = format!("{:?}", miette::Report::new(err));
    assert!(shown.contains(&format!("`{}`", token.addr)), "{shown}");
    assert!(shown.contains("only to that registry"), "{shown}");
    assert!(!shown.contains(&basic("reg:secret")), "{shown}");

    // The token service's own credentials, when the auth file has some, and only those.
    let c = client(
        dir.path(),
        &[(&registry.addr, "reg:secret"), (&token.addr, "tok:other")],
        &hosts,
    );
    fetch(&c, &registry);
    let sent = token.token_auth();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1], Some(format!("Basic {}", basic("tok:other"))));
}

#[test]
fn a_token_service_on_the_registrys_own_host_gets_its_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Server::start(None);
    let c = client(
        dir.path(),
        &[(&registry.addr, "reg:secret")],
        &[&registry.addr],
    );
    fetch(&c, &registry);
    assert_eq!(
        registry.token_auth(),
        [Some(format!("Basic {}", basic("reg:secret")))]
    );
}
