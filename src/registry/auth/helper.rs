//! Credential helpers as containers-auth.json(5) and docker-credential-helpers define them:
//! `docker-credential-NAME get`, the registry host on stdin, a JSON object with `Username` and
//! `Secret` on stdout; "credentials not found" means none. What a helper prints on stderr is
//! not shown (it may echo what it was given).
//!
//! A helper runs while the writer's lock is held, so it gets [`TIMEOUT`] to answer: it runs in
//! a process group of its own, which is killed when the time is up (a helper that is a script
//! leaves no child behind holding its output open), and its answer is read within
//! [`ANSWER_MAX`] bytes.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Credentials;

/// A helper name is a program suffix: no path, no option.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a helper name (the part after `docker-credential-`)"
        ))
    }
}

/// How long a helper has to answer.
pub(super) const TIMEOUT: Duration = Duration::from_secs(30);

/// The most of a helper's answer that is read.
const ANSWER_MAX: u64 = 1 << 20;

/// Asks helper `name` for `host`'s credentials: `Ok(None)` when it has none.
pub(super) fn get(name: &str, host: &str) -> Result<Option<Credentials>, String> {
    ask(&format!("docker-credential-{name}"), host, TIMEOUT)
}

/// Kills the process group `child` leads; it has not been waited for, so its id still names
/// that group.
fn kill_group(child: &mut Child) {
    if let Ok(pgid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group this function's caller
        // created for the helper; no memory is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts `cmd`. A helper just written (an installer, a test) can still be open for writing in
/// a child another thread forked and has not yet exec'd: exec then fails with ETXTBSY for a
/// moment, so that failure is retried, up to 10 times 20 ms apart.
fn spawn(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 10 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// `program get` for `host`, within `timeout`: its exit status and what it printed.
fn call_get(
    program: &str,
    host: &str,
    timeout: Duration,
) -> Result<(std::process::ExitStatus, Vec<u8>), String> {
    let mut cmd = Command::new(program);
    cmd.arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = spawn(&mut cmd).map_err(|e| format!("cannot run `{program}`: {e}"))?;
    let until = Instant::now() + timeout;
    let late = || {
        format!(
            "`{program} get` did not answer for `{host}` within {} and was stopped",
            humantime::format_duration(timeout)
        )
    };
    if let Some(mut stdin) = child.stdin.take() {
        // The host fits in a pipe's buffer: this write does not wait for the helper. A helper
        // that exits without reading it (`credentials not found`) closes the pipe first: its
        // exit status says what happened, not the write.
        match stdin.write_all(host.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                kill_group(&mut child);
                return Err(format!("cannot write to `{program}`: {e}"));
            }
            _ => {}
        }
    }
    let stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(s) = stdout {
            let _ = s.take(ANSWER_MAX).read_to_end(&mut out);
        }
        let _ = tx.send(out);
    });
    let Ok(out) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) else {
        kill_group(&mut child);
        return Err(late());
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok((status, out)),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                kill_group(&mut child);
                return Err(late());
            }
            Err(e) => {
                kill_group(&mut child);
                return Err(format!("`{program}` failed: {e}"));
            }
        }
    }
}

/// Asks `program` for `host`'s credentials within `timeout`.
fn ask(program: &str, host: &str, timeout: Duration) -> Result<Option<Credentials>, String> {
    let (status, stdout) = call_get(program, host, timeout)?;
    let text = String::from_utf8_lossy(&stdout);
    if !status.success() {
        if text.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(format!("`{program} get` exited with {status}"));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let a: Answer = serde_json::from_str(&text)
        .map_err(|_| format!("`{program} get` did not print a JSON object with `Secret`"))?;
    if a.username == "<token>" {
        return Err(format!(
            "`{program}` holds an identity token for `{host}`, which is not supported; log in with a user name and password"
        ));
    }
    if a.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::new(a.username, a.secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper(dir: &std::path::Path, script: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("docker-credential-test");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn a_helper_that_does_not_answer_in_time_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        // A script whose child keeps its output open: the whole group must go.
        let program = helper(
            dir.path(),
            &format!("sleep 300 & echo $! > '{}'; wait", pids.display()),
        );
        let started = Instant::now();
        let err = ask(&program, "quay.io", Duration::from_millis(500)).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(
            err.contains("did not answer for `quay.io` within 500ms and was stopped")
                && err.contains("docker-credential-test get"),
            "{err}"
        );
        let child: i32 = std::fs::read_to_string(&pids)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        // SAFETY: kill with signal 0 only checks that the process exists.
        while unsafe { libc::kill(child, 0) } == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        assert_ne!(
            unsafe { libc::kill(child, 0) },
            0,
            "the helper's child was killed"
        );
    }

    #[test]
    fn a_helper_that_answers_is_heard() {
        let dir = tempfile::tempdir().unwrap();
        let program = helper(
            dir.path(),
            r#"read host; printf '{"Username":"u","Secret":"s-%s"}' "$host""#,
        );
        let creds = ask(&program, "quay.io", Duration::from_secs(30))
            .unwrap()
            .unwrap();
        assert_eq!(creds, Credentials::new("u", "s-quay.io"));
        let program = helper(dir.path(), "echo 'credentials not found'; exit 1");
        assert_eq!(ask(&program, "quay.io", Duration::from_secs(30)), Ok(None));
    }

    #[test]
    fn helper_names_cannot_be_paths_or_options() {
        assert!(check_name("secretservice").is_ok());
        assert!(check_name("ecr-login").is_ok());
        for bad in ["", "../x", "a/b", "-h", "..", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
