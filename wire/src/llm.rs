//! An Llm's document: which provider, model and tier a client should use, and which secret key
//! authenticates it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Kind;
use crate::document::{Cell, Column, Spec, column};
pub use crate::health::{LlmHealth, LlmStatus};
pub use crate::name::SecretKeyRef;

/// The provider an Llm talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LlmType {
    Anthropic,
    Openai,
    Deepseek,
    Vllm,
    Ollama,
    GeminiCli,
}

impl LlmType {
    pub const NAMES: [&'static str; 6] = ["anthropic", "openai", "deepseek", "vllm", "ollama", "gemini-cli"];
    pub const ALL: [LlmType; 6] =
        [LlmType::Anthropic, LlmType::Openai, LlmType::Deepseek, LlmType::Vllm, LlmType::Ollama, LlmType::GeminiCli];

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "anthropic" => Some(LlmType::Anthropic),
            "openai" => Some(LlmType::Openai),
            "deepseek" => Some(LlmType::Deepseek),
            "vllm" => Some(LlmType::Vllm),
            "ollama" => Some(LlmType::Ollama),
            "gemini-cli" => Some(LlmType::GeminiCli),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LlmType::Anthropic => "anthropic",
            LlmType::Openai => "openai",
            LlmType::Deepseek => "deepseek",
            LlmType::Vllm => "vllm",
            LlmType::Ollama => "ollama",
            LlmType::GeminiCli => "gemini-cli",
        }
    }

    /// Hosted providers always need a key; self-hosted ones may run keyless.
    pub fn requires_api_key(self) -> bool {
        matches!(self, LlmType::Anthropic | LlmType::Openai | LlmType::Deepseek)
    }

    /// Self-hosted providers have no well-known endpoint.
    pub fn requires_url(self) -> bool {
        self.official_url().is_none()
    }

    /// The provider's own endpoint, used when an Llm names no `url`; none for self-hosted types.
    pub fn official_url(self) -> Option<&'static str> {
        match self {
            LlmType::Anthropic => Some("https://api.anthropic.com"),
            LlmType::Openai => Some("https://api.openai.com"),
            LlmType::Deepseek => Some("https://api.deepseek.com"),
            LlmType::GeminiCli => Some("https://generativelanguage.googleapis.com"),
            LlmType::Vllm | LlmType::Ollama => None,
        }
    }
}

/// Which class of work an Llm is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Fast,
    Heavy,
}

impl Tier {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "fast" => Some(Tier::Fast),
            "heavy" => Some(Tier::Heavy),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Fast => "fast",
            Tier::Heavy => "heavy",
        }
    }
}

/// A validated Llm spec, as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmSpec {
    #[serde(rename = "type")]
    pub provider: LlmType,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub tier: Tier,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_ref: Option<SecretKeyRef>,
    /// Always present since event version 2; version-1 payloads without it are upcast.
    pub extra: BTreeMap<String, String>,
}

impl Spec for LlmSpec {
    const KIND: Kind = Kind::Llm;
    const COLUMNS: &'static [Column<Self>] = &[
        Column::NAME,
        column("TYPE", |d| Cell::Text(Cow::Borrowed(d.spec.provider.as_str()))),
        column("MODEL", |d| Cell::Text(Cow::Borrowed(&d.spec.model))),
        column("TIER", |d| Cell::Text(Cow::Borrowed(d.spec.tier.as_str()))),
        column("API KEY", |d| Cell::KeyRef(d.spec.api_key_ref.as_ref())),
        Column::AGE,
    ];
    const WIDE: &'static [Column<Self>] = &[
        column("STATUS", |d| Cell::Text(Cow::Borrowed(d.health.as_ref().map_or("Unknown", |s| s.status.as_str())))),
        column("URL", |d| Cell::OrNone(d.spec.url.as_deref())),
        column("EXTRA", |d| Cell::Pairs(&d.spec.extra)),
        Column::VERSION,
        column("DESCRIPTION", |d| Cell::Text(Cow::Borrowed(&d.spec.description))),
    ];
    const DESCRIBE: &'static [Column<Self>] = &[
        column("Type", |d| Cell::Text(Cow::Borrowed(d.spec.provider.as_str()))),
        column("Model", |d| Cell::Text(Cow::Borrowed(&d.spec.model))),
        column("Tier", |d| Cell::Text(Cow::Borrowed(d.spec.tier.as_str()))),
        column("URL", |d| Cell::OrNone(d.spec.url.as_deref())),
        column("API Key", |d| Cell::KeyRef(d.spec.api_key_ref.as_ref())),
        column("Extra", |d| Cell::Pairs(&d.spec.extra)),
        column("Health", |d| match &d.health {
            None => Cell::Text(Cow::Borrowed("Unknown (not checked by this mcpd since it started)")),
            Some(s) if s.message.is_empty() => Cell::Text(Cow::Owned(format!("{} at {}", s.status, s.checked_at))),
            Some(s) => Cell::Text(Cow::Owned(format!("{} at {}: {}", s.status, s.checked_at, s.message))),
        }),
    ];
}
