//! Running the real `mcpctl` binary as a user would: against a test server, with a config file
//! of its own, optionally with standard input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{TestServer, binary};

/// What one mcpctl run printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with everything printed unless the run succeeded.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "mcpctl failed:\n{}\n{}", self.stdout, self.stderr);
        self
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

pub struct Ctl {
    pub server: String,
    pub config: PathBuf,
    pub dir: tempfile::TempDir,
    /// Sent as `MCPCTL_TOKEN`; the bootstrap admin's unless changed, none when `None`.
    pub token: Option<String>,
}

impl Ctl {
    pub fn new(server: &TestServer) -> Ctl {
        Ctl { token: Some(server.admin_token().to_owned()), ..Self::for_url(&server.url("")) }
    }

    pub fn for_url(url: &str) -> Ctl {
        let dir = tempfile::tempdir().unwrap();
        Ctl {
            server: url.to_owned(),
            config: dir.path().join("config.json"),
            dir,
            token: Some(testkit::ADMIN_TOKEN.to_owned()),
        }
    }

    /// A file in this client's scratch directory.
    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, content).unwrap();
        path
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary("mcpctl"));
        command
            .args(args)
            .env("MCPCTL_SERVER", &self.server)
            .env("MCPCTL_CONFIG", &self.config)
            .env("MCPCTL_RETRY_TIMEOUT", "2s")
            .env_remove("RUST_BACKTRACE")
            .current_dir(self.dir.path());
        match &self.token {
            Some(token) => command.env("MCPCTL_TOKEN", token),
            None => command.env_remove("MCPCTL_TOKEN"),
        };
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut child = self
            .command(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mcpctl runs");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
