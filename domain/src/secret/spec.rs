//! The Secret spec as a client sends it. Values are held in `SecretString` from the moment they
//! are parsed, so a `Debug` print or a log line can never show one.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::document::{Kind, SpecInput};
use crate::name::ResourceName;
use crate::validation::{ValidationErrors, patterns};

/// Key name to value. The values never leave the write path except to a backend.
pub type SecretData = BTreeMap<String, SecretString>;

/// A Secret document's spec fields as a client sends them.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretInput {
    /// The SecretBackend holding the values; the default backend when omitted or empty.
    #[schemars(extend("pattern" = patterns::or_empty(patterns::NAME)))]
    pub backend: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Key name to value; write-only. On update, omitting it keeps the current values.
    #[schemars(with = "Option<BTreeMap<String, String>>", extend("propertyNames" = {"pattern": patterns::KEY}))]
    pub data: Option<SecretData>,
}

/// A validated Secret spec.
#[derive(Debug)]
pub struct SecretSpec {
    pub backend: Option<ResourceName>,
    pub description: String,
    pub data: Option<SecretData>,
}

/// Key names follow the rule for Kubernetes Secret keys (and environment variables fit it):
/// 1-253 characters of letters, digits, `-`, `_` and `.`.
pub fn check_key_name(errors: &mut ValidationErrors, field: &str, key: &str) -> bool {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        errors.add(field, "must be 1-253 letters, digits, '-', '_' or '.'");
    }
    ok
}

impl SpecInput for SecretInput {
    type Spec = SecretSpec;
    const KIND: Kind = Kind::Secret;
    const SECRET_FIELDS: &'static [&'static str] = &["data"];

    fn validate(self, errors: &mut ValidationErrors) -> Option<SecretSpec> {
        let backend = self
            .backend
            .filter(|b| !b.is_empty())
            .and_then(|b| ResourceName::parse(&b).map_err(|m| errors.add("spec.backend", m)).ok());
        if let Some(data) = &self.data {
            for key in data.keys() {
                check_key_name(errors, &format!("spec.data.{key}"), key);
            }
        }
        errors.is_empty().then(|| SecretSpec {
            backend,
            description: self.description.unwrap_or_default(),
            data: self.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_values() {
        let input: SecretInput = serde_json::from_str(r#"{"data": {"API_KEY": "sk-very-secret"}}"#).unwrap();
        let mut errors = ValidationErrors::default();
        let spec = input.validate(&mut errors).unwrap();
        assert!(!format!("{spec:?}").contains("sk-very-secret"));
    }

    #[test]
    fn bad_key_names_and_backend_are_reported() {
        let input: SecretInput =
            serde_json::from_str(r#"{"backend": "Not Valid", "data": {"bad key": "v", "OK_1.x": "v"}}"#).unwrap();
        let mut errors = ValidationErrors::default();
        assert!(input.validate(&mut errors).is_none());
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.backend", "spec.data.bad key"]);
    }
}
