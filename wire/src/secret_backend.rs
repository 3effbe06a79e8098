//! A secret backend's document: where secret values are stored (`plaintext` in mcpd's own
//! database, or an `openbao` KV v2 mount), and whether it is the default.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Kind;
use crate::document::{Cell, Column, Spec, column};
use crate::llm::SecretKeyRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendType {
    /// Values in mcpd's own database.
    Plaintext,
    /// Values in an OpenBao / HashiCorp Vault KV v2 server.
    Openbao,
}

impl BackendType {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "plaintext" => Some(BackendType::Plaintext),
            "openbao" => Some(BackendType::Openbao),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BackendType::Plaintext => "plaintext",
            BackendType::Openbao => "openbao",
        }
    }
}

/// Where and how an `openbao` backend reaches its KV v2 mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenBaoConfig {
    pub url: String,
    pub mount: String,
    pub path_prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The plaintext secret key holding the OpenBao token.
    pub token_secret_ref: SecretKeyRef,
    /// Bound on every call to the server.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Delete only marks the latest version deleted instead of removing every version.
    #[serde(default)]
    pub soft_delete: bool,
    /// PEM certificates trusted for the server's TLS certificate, besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// The name the server's certificate is checked against, when `url` names the server by
    /// IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

fn default_timeout_seconds() -> u64 {
    OpenBaoConfig::DEFAULT_TIMEOUT_SECONDS
}

impl OpenBaoConfig {
    pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
    pub const MAX_TIMEOUT_SECONDS: u64 = 60;
}

/// A validated SecretBackend spec, as events carry it. Which backend is the default is not
/// part of it: that is the `defaultbackend` aggregate's one fact, so that exactly one backend
/// holds it whatever the concurrency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretBackendSpec {
    #[serde(rename = "type")]
    pub backend_type: BackendType,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<OpenBaoConfig>,
}

/// A backend as mcpd shows it: its spec, and whether it is the default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendState {
    #[serde(flatten)]
    pub spec: SecretBackendSpec,
    pub is_default: bool,
}

impl Spec for BackendState {
    const KIND: Kind = Kind::SecretBackend;
    const COLUMNS: &'static [Column<Self>] = &[
        Column::NAME,
        column("TYPE", |d| Cell::Text(Cow::Borrowed(d.spec.spec.backend_type.as_str()))),
        column("DEFAULT", |d| Cell::YesNo(d.spec.is_default)),
        Column::AGE,
    ];
    const WIDE: &'static [Column<Self>] = &[
        column("URL", |d| Cell::OrNone(d.spec.spec.config.as_ref().map(|c| c.url.as_str()))),
        Column::VERSION,
        column("DESCRIPTION", |d| Cell::Text(Cow::Borrowed(&d.spec.spec.description))),
    ];
    const DESCRIBE: &'static [Column<Self>] = &[
        column("Type", |d| Cell::Text(Cow::Borrowed(d.spec.spec.backend_type.as_str()))),
        column("Default", |d| Cell::show(d.spec.is_default)),
    ];
}
