use std::io::{Read, Write};
use std::net::TcpStream;

#[test]
fn a_started_registry_answers_the_v2_ping() {
    let reg = driver_matrix_sandbox::registry::Registry::start(Default::default()).unwrap();
    let mut s = TcpStream::connect(reg.addr()).unwrap();
    s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", reg.addr()).as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
        "{out}"
    );
    assert!(
        out.contains("Docker-Distribution-Api-Version: registry/2.0"),
        "{out}"
    );
}
