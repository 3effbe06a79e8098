use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::document::{Kind, SpecInput};
use crate::llm::{SecretKeyRef, SecretKeyRefInput};
use crate::name::ResourceName;
use crate::secret::check_key_name;
use crate::validation::{ValidationErrors, check_http_url};

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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretBackendSpec {
    #[serde(rename = "type")]
    pub backend_type: BackendType,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<OpenBaoConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpenBaoConfigInput {
    pub url: Option<String>,
    /// KV v2 mount; `secret` when omitted.
    pub mount: Option<String>,
    /// Prefix of every secret's path under the mount; `mcpd/` when omitted.
    pub path_prefix: Option<String>,
    /// Sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    pub token_secret_ref: Option<SecretKeyRefInput>,
}

/// A SecretBackend document's spec fields as a client sends them.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretBackendInput {
    /// plaintext | openbao
    #[serde(rename = "type")]
    pub backend_type: Option<String>,
    pub description: Option<String>,
    /// Whether new secrets without an explicit backend go here.
    pub is_default: Option<bool>,
    /// Backend-specific settings; none for plaintext.
    pub config: Option<OpenBaoConfigInput>,
}

impl OpenBaoConfigInput {
    fn validate(self, errors: &mut ValidationErrors) -> Option<OpenBaoConfig> {
        let url = errors.required("spec.config.url", self.url);
        if let Some(url) = &url {
            check_http_url(errors, "spec.config.url", url);
        }
        let token_secret_ref = match self.token_secret_ref {
            None => {
                errors.add("spec.config.tokenSecretRef", "is required");
                None
            }
            Some(r) => {
                let name = errors
                    .required("spec.config.tokenSecretRef.name", r.name)
                    .and_then(|n| {
                        ResourceName::parse(&n)
                            .map_err(|m| errors.add("spec.config.tokenSecretRef.name", m))
                            .ok()
                    });
                let key = errors
                    .required("spec.config.tokenSecretRef.key", r.key)
                    .filter(|k| check_key_name(errors, "spec.config.tokenSecretRef.key", k));
                name.zip(key).map(|(name, key)| SecretKeyRef { name, key })
            }
        };
        let mount = self.mount.unwrap_or_else(|| "secret".into());
        if mount.is_empty() || mount.starts_with('/') || mount.ends_with('/') {
            errors.add(
                "spec.config.mount",
                "must be a mount path without leading or trailing '/'",
            );
        }
        Some(OpenBaoConfig {
            url: url?,
            mount,
            path_prefix: self.path_prefix.unwrap_or_else(|| "mcpd/".into()),
            namespace: self.namespace.filter(|n| !n.is_empty()),
            token_secret_ref: token_secret_ref?,
        })
    }
}

impl SpecInput for SecretBackendInput {
    type Spec = SecretBackendSpec;
    const KIND: Kind = Kind::SecretBackend;

    fn validate(self, errors: &mut ValidationErrors) -> Option<SecretBackendSpec> {
        let backend_type = errors.one_of(
            "spec.type",
            self.backend_type,
            &["plaintext", "openbao"],
            BackendType::parse,
        );
        let config = match (backend_type, self.config) {
            (Some(BackendType::Plaintext), Some(_)) => {
                errors.add("spec.config", "plaintext backends take no config");
                None
            }
            (Some(BackendType::Openbao), None) => {
                errors.add("spec.config", "is required for type openbao");
                None
            }
            (Some(BackendType::Openbao), Some(config)) => {
                let config = config.validate(errors);
                // The driver arrives with the backends work; until then nothing could store
                // values on such a backend, so none may be created.
                errors.add(
                    "spec.type",
                    "openbao backends are not available in this version of mcpd yet",
                );
                config
            }
            _ => None,
        };
        errors.is_empty().then(|| SecretBackendSpec {
            backend_type: backend_type.unwrap_or(BackendType::Plaintext),
            description: self.description.unwrap_or_default(),
            is_default: self.is_default.unwrap_or(false),
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openbao_config_is_checked_field_by_field() {
        let input: SecretBackendInput =
            serde_json::from_str(r#"{"type": "openbao", "config": {"url": "nope", "tokenSecretRef": {"name": "t"}}}"#)
                .unwrap();
        let mut errors = ValidationErrors::default();
        assert!(input.validate(&mut errors).is_none());
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.config.url", "spec.config.tokenSecretRef.key", "spec.type"]
        );
    }

    #[test]
    fn plaintext_takes_no_config() {
        let input: SecretBackendInput = serde_json::from_str(r#"{"type": "plaintext", "config": {}}"#).unwrap();
        let mut errors = ValidationErrors::default();
        assert!(input.validate(&mut errors).is_none());
        assert_eq!(errors.0[0].field, "spec.config");
    }
}
