//! The Llm spec as clients send it (`LlmInput`, loose, so every bad field can be reported at
//! once) and as the domain keeps it (`LlmSpec`, valid by construction).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::document::{Kind, SpecInput};
use crate::name::ResourceName;
use crate::secret::check_key_name;
use crate::validation::{ValidationErrors, check_http_url, patterns};
pub use wire::llm::{LlmSpec, LlmType, SecretKeyRef, Tier};

/// The `extra` key setting how long mcpd waits for the provider when proxying (seconds).
pub const TIMEOUT_KEY: &str = "timeoutSeconds";

/// `apiKeyRef` as sent by a client.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRefInput {
    /// The Secret's name.
    #[schemars(with = "String", extend("pattern" = patterns::NAME))]
    pub name: Option<String>,
    /// The key inside the Secret.
    #[schemars(with = "String", extend("pattern" = patterns::KEY))]
    pub key: Option<String>,
}

/// [`LlmInput::validate`]'s `extra.timeoutSeconds` check: a decimal number of seconds with at
/// most three decimals, above 0 and at most 3600.
pub const TIMEOUT_PATTERN: &str = r"^(([1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2})(\.[0-9]{1,3})?|3600(\.0{1,3})?|0\.([1-9][0-9]{0,2}|0[1-9][0-9]?|00[1-9]))$";

fn valid_timeout(raw: &str) -> bool {
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, "0"));
    let digits = |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    let canonical = whole == "0" || !whole.starts_with('0');
    digits(whole, 4) && digits(fraction, 3) && canonical && raw.parse::<f64>().is_ok_and(|s| s > 0.0 && s <= 3600.0)
}

/// An Llm document's spec fields as a client sends them.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("allOf" = [
    {"if": {"properties": {"type": {"enum": ["vllm", "ollama"]}}},
     "then": {"required": ["url"], "properties": {"url": {"type": "string", "minLength": 1}}}},
    {"if": {"properties": {"type": {"enum": ["anthropic", "openai", "deepseek"]}}},
     "then": {"required": ["apiKeyRef"], "properties": {"apiKeyRef": {"type": "object"}}}},
]))]
pub struct LlmInput {
    /// The provider: anthropic | openai | deepseek | vllm | ollama | gemini-cli.
    #[serde(rename = "type")]
    #[schemars(with = "LlmType")]
    pub provider: Option<String>,
    /// The provider's model id, e.g. `claude-haiku-4-5`.
    #[schemars(with = "String", extend("pattern" = patterns::NOT_BLANK))]
    pub model: Option<String>,
    /// The endpoint (http:// or https://); required for vllm and ollama, the provider's own
    /// when omitted.
    #[schemars(extend("pattern" = patterns::or_empty(patterns::HTTP_URL)))]
    pub url: Option<String>,
    /// Which class of work it is meant for: fast | heavy.
    #[schemars(with = "Tier")]
    pub tier: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// The Secret key holding the API key; required for anthropic, openai and deepseek.
    pub api_key_ref: Option<SecretKeyRefInput>,
    /// Free-form string settings passed through to clients; `timeoutSeconds` bounds how long
    /// mcpd waits for the provider when it proxies a call (0 < t ≤ 3600, default 120).
    #[schemars(extend("properties" = {"timeoutSeconds": {"type": "string", "pattern": TIMEOUT_PATTERN}}))]
    pub extra: Option<BTreeMap<String, String>>,
}

impl SpecInput for LlmInput {
    type Spec = LlmSpec;
    const KIND: Kind = Kind::Llm;

    /// Validates every field, reporting all failures at once, into `errors`.
    fn validate(self, errors: &mut ValidationErrors) -> Option<LlmSpec> {
        let provider = errors.one_of("spec.type", self.provider, &LlmType::NAMES, LlmType::parse);
        let model = errors.required("spec.model", self.model);
        let tier = errors.one_of("spec.tier", self.tier, &["fast", "heavy"], Tier::parse);
        let url = self.url.filter(|u| !u.is_empty());
        if let Some(url) = &url {
            check_http_url(errors, "spec.url", url);
        } else if provider.is_some_and(LlmType::requires_url) {
            errors.add("spec.url", format!("is required for type {}", provider.map_or("", LlmType::as_str)));
        }
        let api_key_ref = match self.api_key_ref {
            None => {
                if let Some(p) = provider.filter(|p| p.requires_api_key()) {
                    errors.add("spec.apiKeyRef", format!("is required for type {}", p.as_str()));
                }
                None
            }
            Some(r) => {
                let name = errors
                    .required("spec.apiKeyRef.name", r.name)
                    .and_then(|n| ResourceName::parse(&n).map_err(|m| errors.add("spec.apiKeyRef.name", m)).ok());
                let key = errors
                    .required("spec.apiKeyRef.key", r.key)
                    .filter(|k| check_key_name(errors, "spec.apiKeyRef.key", k));
                name.zip(key).map(|(name, key)| SecretKeyRef { name, key })
            }
        };
        let extra = self.extra.unwrap_or_default();
        if extra.get(TIMEOUT_KEY).is_some_and(|raw| !valid_timeout(raw)) {
            errors.add(
                format!("spec.extra.{TIMEOUT_KEY}"),
                "must be a number of seconds such as 30 or 0.5 (at most three decimals), above 0 and at most 3600",
            );
        }
        let description = self.description.unwrap_or_default();
        Some(LlmSpec { provider: provider?, model: model?, url, tier: tier?, description, api_key_ref, extra })
            .filter(|_| errors.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn the_pattern_matches(raw: &str) -> bool {
        regex::Regex::new(TIMEOUT_PATTERN).unwrap().is_match(raw)
    }

    fn fields(errors: &ValidationErrors) -> Vec<&str> {
        errors.0.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn every_bad_field_is_reported() {
        let mut errors = ValidationErrors::default();
        let input = LlmInput {
            provider: Some("anthropic".into()),
            tier: Some("medium".into()),
            url: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(input.validate(&mut errors).is_none());
        assert_eq!(fields(&errors), ["spec.model", "spec.tier", "spec.url", "spec.apiKeyRef"]);
        assert_eq!(errors.0[1].message, "must be one of fast, heavy");
    }

    #[test]
    fn self_hosted_types_need_a_url_but_no_key() {
        let mut errors = ValidationErrors::default();
        let input = LlmInput {
            provider: Some("ollama".into()),
            model: Some("llama3".into()),
            tier: Some("fast".into()),
            ..Default::default()
        };
        assert!(input.clone().validate(&mut errors).is_none());
        assert_eq!(fields(&errors), ["spec.url"]);

        let mut errors = ValidationErrors::default();
        let with_url = LlmInput { url: Some("http://127.0.0.1:11434".into()), ..input };
        let spec = with_url.validate(&mut errors).expect("valid");
        assert_eq!(spec.api_key_ref, None);
    }

    #[test]
    fn the_proxy_timeout_must_be_a_sane_number_of_seconds() {
        for (raw, ok) in [
            ("30", true),
            ("0.5", true),
            ("3600", true),
            ("3600.000", true),
            ("0.001", true),
            ("0", false),
            ("0.000", false),
            ("3600.5", false),
            ("030", false),
            ("1e3", false),
            (" 30", false),
            ("abc", false),
            ("7200", false),
            ("NaN", false),
            ("inf", false),
        ] {
            let pattern_says = the_pattern_matches(raw);
            assert_eq!(pattern_says, ok, "the schema's pattern on {raw:?}");
            let mut errors = ValidationErrors::default();
            let input = LlmInput {
                provider: Some("openai".into()),
                model: Some("gpt-5".into()),
                tier: Some("fast".into()),
                api_key_ref: Some(SecretKeyRefInput { name: Some("openai".into()), key: Some("API_KEY".into()) }),
                extra: Some([(TIMEOUT_KEY.to_owned(), raw.to_owned())].into()),
                ..Default::default()
            };
            assert_eq!(input.validate(&mut errors).is_some(), ok, "{raw}: {errors}");
        }
    }

    #[test]
    fn type_names_round_trip() {
        for name in LlmType::NAMES {
            assert_eq!(LlmType::parse(name).map(LlmType::as_str), Some(name));
        }
    }
}
