//! Resource names: the DNS-label rule kubectl uses, so a name is safe in URLs, paths and keys.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// [`ResourceName::parse`] as a JSON Schema pattern, for the published schemas.
pub const PATTERN: &str = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";

/// A validated resource name: 1-63 lower-case alphanumerics or `-`, starting and ending with
/// an alphanumeric (RFC 1123 label).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(extend("pattern" = PATTERN))]
pub struct ResourceName(String);

impl ResourceName {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            return Err("must not be empty");
        }
        if raw.len() > 63 {
            return Err("must be at most 63 characters");
        }
        if !raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err("must consist of lower-case letters, digits and '-'");
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err("must start and end with a letter or digit");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ResourceName {
    type Error = &'static str;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ResourceName> for String {
    fn from(name: ResourceName) -> Self {
        name.0
    }
}

/// Debug-prints as the quoted name, so `{:?}` in messages reads `llm "x"`.
impl fmt::Debug for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key inside a Secret: `{name: anthropic, key: API_KEY}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    pub name: ResourceName,
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::ResourceName;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "claude-fast", "x1", &"a".repeat(63)] {
            assert!(ResourceName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_what_kubectl_rejects() {
        for bad in ["", "-a", "a-", "Upper", "a_b", "a.b", "ä", &"a".repeat(64)] {
            assert!(ResourceName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_pattern_says_what_parse_takes() {
        let pattern = regex::Regex::new(super::PATTERN).unwrap();
        for raw in
            ["a", "claude-fast", "x1", &"a".repeat(63), "", "-a", "a-", "Upper", "a_b", "a.b", "ä", &"a".repeat(64)]
        {
            assert_eq!(pattern.is_match(raw), ResourceName::parse(raw).is_ok(), "{raw:?}");
        }
    }
}
