//! Field-level validation errors. Validation collects every failing field before answering, so
//! a client fixes its document in one round trip.

use std::fmt;

use serde::Serialize;

/// One failing field, named by its path in the document (`spec.tier`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every field that failed validation, in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing failed, otherwise every collected error.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Self> {
        if self.0.is_empty() { Ok(value()) } else { Err(self) }
    }

    /// A required string field: reports it as missing or blank, returns it otherwise.
    pub fn required(&mut self, field: &str, value: Option<String>) -> Option<String> {
        match value {
            Some(v) if !v.trim().is_empty() => Some(v),
            _ => {
                self.add(field, "is required");
                None
            }
        }
    }

    /// A value that must be one of a fixed set, parsed with `parse`.
    pub fn one_of<T>(
        &mut self,
        field: &str,
        value: Option<String>,
        allowed: &[&str],
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let value = self.required(field, value)?;
        let parsed = parse(&value);
        if parsed.is_none() {
            self.add(field, format!("must be one of {}", allowed.join(", ")));
        }
        parsed
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// A URL that mcpd can call: absolute, http or https, with a host.
pub fn check_http_url(errors: &mut ValidationErrors, field: &str, url: &str) {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace) => {}
        _ => errors.add(field, "must be an absolute http:// or https:// URL"),
    }
}
