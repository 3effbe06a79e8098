//! The flat resource document shared by the API, `get -o yaml|json` and `apply -f`:
//! `kind`, `name`, the kind's spec fields, and read-only fields (`resourceVersion`, `createdAt`,
//! `updatedAt`) that are accepted and ignored on input so that what `get` prints can be applied.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::name::ResourceName;
use crate::validation::ValidationErrors;

pub use wire::Kind;

/// Fields the server owns: accepted in input, ignored.
fn read_only_fields(kind: Kind) -> &'static [&'static str] {
    kind.info().read_only
}

/// A kind's spec input: loose enough to deserialize anything plausible, so that validation can
/// report every bad field at once.
pub trait SpecInput: DeserializeOwned {
    type Spec;
    const KIND: Kind;
    /// Spec fields holding secret values. serde's type errors quote the offending value, so an
    /// error under one of these names the path only.
    const SECRET_FIELDS: &'static [&'static str] = &[];
    fn validate(self, errors: &mut ValidationErrors) -> Option<Self::Spec>;
}

/// Parses and validates a whole document; `url_name` is the name in the URL, if any.
pub fn parse_valid<I: SpecInput>(
    value: Value,
    url_name: Option<&str>,
) -> Result<Result<(ResourceName, I::Spec), ValidationErrors>, ShapeError> {
    let Parsed { name, spec, mut errors } = parse::<I>(I::KIND, value).map_err(|error| match error {
        ShapeError::Field { path, .. }
            if I::SECRET_FIELDS
                .iter()
                .any(|f| path == format!("spec.{f}") || path.starts_with(&format!("spec.{f}."))) =>
        {
            ShapeError::Field { path, message: "values must be strings".into() }
        }
        other => other,
    })?;
    let name = resolve_name(&mut errors, name, url_name);
    let spec = spec.validate(&mut errors);
    Ok(match (name, spec) {
        (Some(name), Some(spec)) if errors.is_empty() => Ok((name, spec)),
        _ => Err(errors),
    })
}

/// The JSON Schema of a kind's whole document: the spec input's schema plus the envelope
/// (`kind`, `name`) and the read-only fields the server fills in.
pub fn document_schema<I: SpecInput + schemars::JsonSchema>() -> Value {
    // Inlined, so that the schema stands alone wherever it is embedded (the OpenAPI document).
    let mut settings = schemars::generate::SchemaSettings::draft2020_12().for_deserialize();
    settings.inline_subschemas = true;
    let mut schema = Value::from(settings.into_generator().into_root_schema_for::<I>());
    let kind = I::KIND;
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        let mut envelope = Map::new();
        envelope.insert(
            "kind".into(),
            serde_json::json!({"type": "string", "description": format!("{kind}; optional when the URL names the kind")}),
        );
        envelope
            .insert("name".into(), serde_json::json!({"type": "string", "pattern": crate::validation::patterns::NAME}));
        for field in read_only_fields(kind) {
            envelope.insert((*field).into(), serde_json::json!({"readOnly": true}));
        }
        envelope.extend(std::mem::take(properties));
        *properties = envelope;
    }
    schema
}

/// A document whose JSON shape is wrong: not an object, an unknown field, a wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("the body must be a JSON object")]
    NotAnObject,
    #[error("{path}: {message}")]
    Field { path: String, message: String },
}

/// A document split into its envelope and the kind's spec input.
#[derive(Debug)]
pub struct Parsed<T> {
    pub name: Option<String>,
    pub spec: T,
    /// Errors found in the envelope (`kind`), reported together with the spec's.
    pub errors: ValidationErrors,
}

/// Splits `value` into envelope and spec, rejecting unknown fields and wrong types by path.
pub fn parse<T: DeserializeOwned>(kind: Kind, value: Value) -> Result<Parsed<T>, ShapeError> {
    let Value::Object(mut fields) = value else {
        return Err(ShapeError::NotAnObject);
    };
    let mut errors = ValidationErrors::default();
    match fields.remove("kind") {
        None | Some(Value::Null) => {}
        Some(Value::String(k)) if Kind::parse_document(&k) == Some(kind) => {}
        Some(other) => {
            errors.add("kind", format!("must be {kind:?} for this endpoint, not {other}", kind = kind.as_str()))
        }
    }
    let name = match fields.remove("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n),
        Some(_) => {
            return Err(ShapeError::Field { path: "name".into(), message: "invalid type: expected a string".into() });
        }
    };
    for field in read_only_fields(kind) {
        fields.remove(*field);
    }
    let spec = serde_path_to_error::deserialize(Value::Object(Map::from_iter(fields))).map_err(
        |e: serde_path_to_error::Error<serde_json::Error>| {
            let path = e.path().to_string();
            ShapeError::Field {
                path: if path == "." { "spec".into() } else { format!("spec.{path}") },
                message: e.into_inner().to_string(),
            }
        },
    )?;
    Ok(Parsed { name, spec, errors })
}

/// Resolves a document's name against the one in the URL (if any): the name is required when
/// the URL has none, and must match it when both are given.
pub fn resolve_name(
    errors: &mut ValidationErrors,
    body_name: Option<String>,
    url_name: Option<&str>,
) -> Option<ResourceName> {
    let raw = match (body_name, url_name) {
        (Some(body), Some(url)) if body != url => {
            errors.add("name", format!("{body:?} does not match {url:?} in the URL"));
            return None;
        }
        (Some(body), _) => body,
        (None, Some(url)) => url.to_owned(),
        (None, None) => {
            errors.add("name", "is required");
            return None;
        }
    };
    match ResourceName::parse(&raw) {
        Ok(name) => Some(name),
        Err(message) => {
            errors.add("name", message);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        #[allow(dead_code)]
        model: Option<String>,
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = parse::<Input>(Kind::Llm, json!({"name": "a", "modle": "x"})).unwrap_err();
        assert!(err.to_string().contains("unknown field `modle`"), "{err}");
    }

    #[test]
    fn kind_may_be_plural_and_any_case_but_must_match() {
        let ok = parse::<Input>(Kind::Llm, json!({"kind": "LLMs", "name": "a"})).unwrap();
        assert!(ok.errors.is_empty());
        let bad = parse::<Input>(Kind::Llm, json!({"kind": "secret", "name": "a"})).unwrap();
        assert_eq!(bad.errors.0[0].field, "kind");
    }

    #[test]
    fn read_only_fields_are_ignored() {
        let doc = json!({"name": "a", "resourceVersion": 3, "createdAt": "x", "updatedAt": "y"});
        assert!(parse::<Input>(Kind::Llm, doc).is_ok());
    }

    #[test]
    fn wrong_types_name_their_path() {
        let err = parse::<Input>(Kind::Llm, json!({"model": 5})).unwrap_err();
        assert!(err.to_string().starts_with("spec.model: invalid type"), "{err}");
    }

    #[test]
    fn the_document_schema_has_envelope_and_spec_fields() {
        let schema = document_schema::<crate::llm::LlmInput>();
        let properties = schema["properties"].as_object().unwrap();
        let names: Vec<_> = properties.keys().map(String::as_str).collect();
        assert_eq!(&names[..2], ["kind", "name"]);
        for field in ["type", "model", "tier", "apiKeyRef", "extra", "resourceVersion"] {
            assert!(properties.contains_key(field), "{field} missing from {names:?}");
        }
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn name_must_match_the_url() {
        let mut errors = ValidationErrors::default();
        assert!(resolve_name(&mut errors, Some("a".into()), Some("b")).is_none());
        assert!(resolve_name(&mut errors, None, None).is_none());
        assert!(resolve_name(&mut errors, Some("Bad_Name".into()), None).is_none());
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "name", "name"]);
    }
}
