//! The client configuration: `~/.mcpctl/config.json` (or `$MCPCTL_CONFIG`), holding the server
//! URL and the token. Written with mode 0600.

use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:3100";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A PEM file of the CA that signed the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<PathBuf>,
}

pub fn path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MCPCTL_CONFIG") {
        return Ok(PathBuf::from(path));
    }
    let home = std::env::home_dir().context("cannot find the home directory; set MCPCTL_CONFIG")?;
    Ok(home.join(".mcpctl").join("config.json"))
}

pub fn load() -> anyhow::Result<Config> {
    let path = path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub fn save(config: &Config) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;

    let path = path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    // An existing file keeps its mode on open; make sure it is private.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(serde_json::to_string_pretty(config)?.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(path)
}

/// The token to send: `--token` / `MCPCTL_TOKEN`, else the config file.
pub fn token(flag: Option<String>) -> anyhow::Result<Option<String>> {
    Ok(match flag {
        Some(token) => Some(token),
        None => load()?.token,
    })
}

/// The server to talk to: `--server` / `MCPCTL_SERVER`, else the config file, else the default.
pub fn server(flag: Option<String>) -> anyhow::Result<String> {
    let server = match flag {
        Some(server) => server,
        None => load()?.server.unwrap_or_else(|| DEFAULT_SERVER.to_owned()),
    };
    Ok(server.trim_end_matches('/').to_owned())
}

/// The CA to trust for the server's certificate: `--certificate-authority`, else the config
/// file's.
pub fn certificate_authority(flag: Option<PathBuf>) -> anyhow::Result<Option<PathBuf>> {
    Ok(match flag {
        Some(path) => Some(path),
        None => load()?.certificate_authority,
    })
}
