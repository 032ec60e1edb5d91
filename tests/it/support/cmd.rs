//! The one way a test runs the binary: a [`Cmd`] builder that reads like the sentence the test
//! means (`w.cmd().args(["plan"]).expect_exit(2).stderr_says("…").run()`) and one finished
//! [`Out`]. Every `Cmd` starts isolated in one place ([`Cmd::isolated`]): a HOME of its own
//! (the XDG directories follow it), no credentials, auth files, registries.conf or cache key
//! from this machine, no colors, no stdin, and buildah's test environment. When an expectation
//! fails, the panic shows the command, where it ran, its exit and both streams.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::{buildah_env, says};

/// What the exit of a run must be.
#[derive(Debug, Clone, Copy)]
enum Exit {
    Code(i32),
    /// One of these codes.
    OneOf(&'static [i32]),
    /// Any failure (a non-zero code or a signal).
    Failure,
    /// Anything: the test looks at [`Out::status`] itself.
    Any,
}

/// A run of the binary being set up; nothing runs until [`Cmd::run`] (or [`Cmd::spawn`]).
#[must_use = "a Cmd does nothing until it is run"]
pub struct Cmd {
    cmd: Command,
    dir: PathBuf,
    shown: Vec<OsString>,
    exit: Exit,
    stdout_has: Vec<String>,
    stderr_has: Vec<String>,
    stderr_says: Vec<String>,
    /// The HOME of a run outside any project, removed when the `Cmd` is.
    _home: Option<tempfile::TempDir>,
}

impl Cmd {
    /// The binary in `dir`, with `home` as HOME: no credentials (`REGISTRY_AUTH_FILE`,
    /// `DOCKER_CONFIG`, `XDG_RUNTIME_DIR`'s auth.json), no registries.conf, no cache key from
    /// this machine; XDG directories under `home`; no colors; stdin closed; buildah set up for
    /// root without a container engine unless the environment says otherwise. Expects exit 0.
    pub fn isolated(dir: &Path, home: &Path) -> Cmd {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_driver-matrix"));
        cmd.current_dir(dir)
            .env("NO_COLOR", "1")
            .env("HOME", home)
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG")
            .env_remove("CONTAINERS_REGISTRIES_CONF")
            .env_remove("CONTAINERS_AUTH_FILE")
            // The cache key lives under this HOME: no other run's key vouches for this cache.
            .env_remove("DRIVER_MATRIX_CACHE_KEY")
            .env_remove("SOURCE_DATE_EPOCH");
        for xdg in [
            "XDG_RUNTIME_DIR",
            "XDG_CONFIG_HOME",
            "XDG_CACHE_HOME",
            "XDG_DATA_HOME",
            "XDG_STATE_HOME",
        ] {
            cmd.env_remove(xdg);
        }
        cmd.stdin(Stdio::null());
        buildah_env(&mut cmd);
        Cmd {
            cmd,
            dir: dir.to_path_buf(),
            shown: Vec::new(),
            exit: Exit::Code(0),
            stdout_has: Vec::new(),
            stderr_has: Vec::new(),
            stderr_says: Vec::new(),
            _home: None,
        }
    }

    /// A run outside any project: a fresh temporary directory is its HOME and working
    /// directory.
    pub(super) fn homeless() -> Cmd {
        let home = tempfile::tempdir().unwrap();
        let mut cmd = Cmd::isolated(home.path(), home.path());
        cmd._home = Some(home);
        cmd
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.shown.push(arg.as_ref().to_os_string());
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Cmd {
        self.cmd.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = dir.as_ref().to_path_buf();
        self.cmd.current_dir(dir);
        self
    }

    /// The exit code the run must end with (0 unless said).
    pub fn expect_exit(mut self, code: i32) -> Cmd {
        self.exit = Exit::Code(code);
        self
    }

    /// The exit code must be one of `codes`.
    pub fn expect_exit_in(mut self, codes: &'static [i32]) -> Cmd {
        self.exit = Exit::OneOf(codes);
        self
    }

    /// The run must fail, with any code or a signal.
    pub fn expect_failure(mut self) -> Cmd {
        self.exit = Exit::Failure;
        self
    }

    /// The run may end any way: the test judges [`Out::status`] itself.
    pub fn any_exit(mut self) -> Cmd {
        self.exit = Exit::Any;
        self
    }

    /// stdout must hold `text` verbatim.
    pub fn stdout_contains(mut self, text: impl Into<String>) -> Cmd {
        self.stdout_has.push(text.into());
        self
    }

    /// stderr must hold `text` verbatim.
    pub fn stderr_contains(mut self, text: impl Into<String>) -> Cmd {
        self.stderr_has.push(text.into());
        self
    }

    /// stderr (a rendered diagnostic) must hold `text`, ignoring wrapping (see [`says`]).
    pub fn stderr_says(mut self, text: impl Into<String>) -> Cmd {
        self.stderr_says.push(text.into());
        self
    }

    /// Runs to completion and checks every expectation; panics showing the run otherwise.
    pub fn run(mut self) -> Out {
        let output = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.line()));
        let out = Out {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            shown: self.line(),
        };
        self.check(&out);
        out
    }

    /// [`Cmd::run`], then its stdout.
    pub fn stdout(self) -> String {
        self.run().stdout
    }

    /// [`Cmd::run`], then its stderr.
    pub fn stderr(self) -> String {
        self.run().stderr
    }

    /// Starts the run with the given streams; [`Running::wait`] checks the expectations.
    pub fn spawn(mut self, stdout: Stdio, stderr: Stdio) -> Running {
        let child = self
            .cmd
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.line()));
        Running { child, cmd: self }
    }

    /// The environment this run changes: `Some` set, `None` removed.
    pub fn envs(&self) -> Vec<(String, Option<String>)> {
        self.cmd
            .get_envs()
            .map(|(k, v)| {
                let text = |s: &OsStr| s.to_string_lossy().into_owned();
                (text(k), v.map(text))
            })
            .collect()
    }

    /// The command as a shell would show it, and where it ran.
    fn line(&self) -> String {
        let mut line = String::from("`driver-matrix");
        for a in &self.shown {
            let _ = write!(line, " {}", a.to_string_lossy());
        }
        let _ = write!(line, "` in {}", self.dir.display());
        line
    }

    fn check(&self, out: &Out) {
        let exit_ok = match self.exit {
            Exit::Code(c) => out.status.code() == Some(c),
            Exit::OneOf(codes) => out.status.code().is_some_and(|c| codes.contains(&c)),
            Exit::Failure => !out.status.success(),
            Exit::Any => true,
        };
        if !exit_ok {
            out.fail(&format!("expected exit {:?}", self.exit));
        }
        for text in &self.stdout_has {
            if !out.stdout.contains(text.as_str()) {
                out.fail(&format!("stdout lacks {text:?}"));
            }
        }
        for text in &self.stderr_has {
            if !out.stderr.contains(text.as_str()) {
                out.fail(&format!("stderr lacks {text:?}"));
            }
        }
        for text in &self.stderr_says {
            if !says(&out.stderr, text) {
                out.fail(&format!("stderr does not say {text:?}"));
            }
        }
    }
}

/// A started [`Cmd`].
pub struct Running {
    pub child: Child,
    cmd: Cmd,
}

impl Running {
    /// Waits for the end and checks the expectations as [`Cmd::run`] does.
    pub fn wait(self) -> Out {
        let output = self.child.wait_with_output().unwrap();
        let out = Out {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            shown: self.cmd.line(),
        };
        self.cmd.check(&out);
        out
    }
}

/// A finished run: its exit and both streams as text.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The command, for messages.
    shown: String,
}

impl Out {
    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| self.fail(&format!("stdout is not JSON: {e}")))
    }

    /// Panics with `why`, the command, its exit and both streams.
    pub fn fail(&self, why: &str) -> ! {
        panic!(
            "{}: {why}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.shown, self.status, self.stdout, self.stderr
        )
    }
}
