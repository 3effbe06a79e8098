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
            Some(v) if !is_blank(&v) => Some(v),
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
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && rest.bytes().all(|b| b.is_ascii_graphic()) => {}
        _ => errors.add(field, "must be an absolute http:// or https:// URL of printable ASCII"),
    }
}

/// A whole number as JSON Schema's `integer` has it: `21` and `21.0` alike (`null` is `None`).
pub fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    use serde::Deserialize;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_u64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&f) => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom(format!("invalid value: {number}, expected a whole number of seconds"))),
    }
}

/// Blank: nothing but white space and control characters.
pub fn is_blank(value: &str) -> bool {
    value.chars().all(|c| c.is_whitespace() || c.is_control())
}

/// The JSON Schema patterns of what this module's checks accept, for the published schemas:
/// a check and its pattern sit side by side, so that one is changed with the other.
pub mod patterns {
    /// [`super::ValidationErrors::required`]: something besides white space and control characters.
    pub const NOT_BLANK: &str = r"[^\s\x00-\x1f\x7f-\x9f]";
    /// [`super::check_http_url`].
    pub const HTTP_URL: &str = "^https?://[!-.0-~][!-~]*$";
    /// A resource name (`wire::name::ResourceName`): an RFC 1123 label.
    pub const NAME: &str = wire::name::PATTERN;
    /// `pattern` (anchored, `^…$`), or empty: for a field where empty means "not given".
    pub fn or_empty(pattern: &str) -> String {
        format!("^({})?$", unanchored(pattern))
    }

    /// `pattern` without its anchors, to be part of a longer one.
    pub fn unanchored(pattern: &str) -> &str {
        pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')).expect("an anchored pattern")
    }

    /// A secret key name, as `secret::check_key_name` checks it.
    pub const KEY: &str = "^[-._a-zA-Z0-9]{1,253}$";
}
