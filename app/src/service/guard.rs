//! "Whoever can direct a credential or a caller's request can read it." Every write that
//! decides where mcpd sends a credential or what callers send it (an Llm's endpoint, with its
//! key or without one; a backend's URL, token and mount; the default backend; a migration's
//! secrets) is described as a [`Direction`] and checked here, in [`authorize`], and nowhere
//! else. The table of what each needs is in docs/security.md.

use domain::llm::LlmType;

use crate::context::RequestContext;
use crate::error::ApiError;
use domain::rbac::Verb;

/// One act of directing a credential somewhere.
#[derive(Debug, Clone, Copy)]
pub enum Direction<'a> {
    /// An Llm's endpoint, its `url` (its type's official endpoint when `None`): every caller's
    /// request to the Llm goes there (a tier's callers included, whoever they are), with the
    /// key of secret `secret` when the Llm has one.
    LlmUpstream { secret: Option<&'a str>, provider: LlmType, url: Option<&'a str> },
    /// A backend's destination (its type, URL, mount, path prefix, namespace, token reference,
    /// TLS settings): it receives its token, and the values of every secret stored or migrated
    /// to it, by anyone.
    BackendDestination { backend: &'a str },
    /// Making a backend the default: every new secret without an explicit backend goes there.
    DefaultBackend { backend: &'a str },
    /// A migration moving the secrets `names` (every secret on the source when `None`) to
    /// another backend. Backends' destinations are themselves guarded, so a migration moves
    /// values only between destinations someone able to read every secret has chosen; the
    /// caller must still be allowed to change each secret moved.
    Migration { names: Option<&'a [String]> },
}

/// The upstream endpoints an Llm may send its key and its callers' requests to without its
/// author being able to read them: each type's official endpoint (its whole origin), and what
/// an admin allows with `--allowed-upstream`: that URL's origin and every path at or below its
/// path (`https://llm.internal:8443/v1` allows `/v1` and `/v1/…`, not `/v10` nor `/admin`).
/// An Llm URL with a query, a fragment or credentials is never an allowed upstream: mcpd
/// appends the endpoint's path to the URL, and those would let its author pick another path.
#[derive(Debug, Clone)]
pub struct Upstreams {
    allowed: Vec<reqwest::Url>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams::new(&[]).expect("the official endpoints parse")
    }
}

impl Upstreams {
    /// The official endpoints plus `extra` (absolute http(s) URLs: their origin and path).
    pub fn new(extra: &[String]) -> anyhow::Result<Upstreams> {
        let mut allowed = Vec::new();
        for raw in LlmType::ALL.iter().filter_map(|t| t.official_url()).map(str::to_owned).chain(extra.iter().cloned())
        {
            let url = reqwest::Url::parse(&raw).map_err(|e| anyhow::anyhow!("allowed upstream {raw:?}: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                anyhow::bail!("allowed upstream {raw:?} must be an absolute http:// or https:// URL");
            }
            if url.query().is_some()
                || url.fragment().is_some()
                || !url.username().is_empty()
                || url.password().is_some()
            {
                anyhow::bail!(
                    "allowed upstream {raw:?} must be an origin and a path, without query, fragment or credentials"
                );
            }
            allowed.push(url);
        }
        Ok(Upstreams { allowed })
    }

    /// Whether an Llm of `provider` at `url` sends its key and requests to an allowed upstream.
    /// No URL means the type's official endpoint; a type without one (self-hosted) needs a URL.
    pub fn allows(&self, provider: LlmType, url: Option<&str>) -> bool {
        let Some(raw) = url.or(provider.official_url()) else {
            return false;
        };
        let Ok(url) = reqwest::Url::parse(raw) else {
            return false;
        };
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        // Parsing resolved dot segments (`/v1/../admin`, `%2e%2e` too) as the call's URL will.
        let path = url.path().trim_end_matches('/');
        self.allowed.iter().any(|a| {
            let prefix = a.path().trim_end_matches('/');
            a.origin() == url.origin()
                && path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// Allows `direction` to the caller, or answers 403 saying what it would take.
pub fn authorize(ctx: &RequestContext, direction: Direction<'_>, upstreams: &Upstreams) -> Result<(), ApiError> {
    let p = &ctx.permissions;
    let who = &ctx.actor;
    match direction {
        Direction::LlmUpstream { secret, provider, url } => {
            if upstreams.allows(provider, url) {
                return Ok(());
            }
            // Elsewhere, its author reads what it is sent: the key, and every caller's request
            // (a tier's included), so it takes the power to read every secret and, when the Llm
            // has a key, that key by name.
            if p.may_reveal_all() && secret.is_none_or(|secret| p.may_reveal(secret)) {
                return Ok(());
            }
            let to = url.unwrap_or("a self-hosted endpoint");
            let what = match secret {
                Some(secret) => format!("the key of secret {secret:?} and its callers' requests"),
                None => "its callers' requests".to_owned(),
            };
            Err(ApiError::Forbidden(format!(
                "user {who:?} may not send {what} to {to}: only to an allowed upstream (the provider's official \
                 endpoint, or one an admin allows), unless the user may reveal every secret"
            )))
        }
        Direction::BackendDestination { backend } => {
            if p.may_reveal_all() {
                return Ok(());
            }
            Err(ApiError::Forbidden(format!(
                "user {who:?} may not choose where secretbackend {backend:?} sends its token and values: \
                 that needs reveal:secrets on every secret"
            )))
        }
        Direction::DefaultBackend { backend } => {
            if p.may_reveal_all() {
                return Ok(());
            }
            Err(ApiError::Forbidden(format!(
                "user {who:?} may not make secretbackend {backend:?} the default: every new secret would go there, \
                 so that needs reveal:secrets on every secret"
            )))
        }
        Direction::Migration { names: None } => {
            if p.allows("secrets", Verb::View, None) && p.allows("secrets", Verb::Edit, None) {
                return Ok(());
            }
            Err(ApiError::Forbidden(format!(
                "user {who:?} may not migrate every secret: it may view and edit some secrets only; name them"
            )))
        }
        Direction::Migration { names: Some(names) } => {
            match names
                .iter()
                .find(|n| !(p.allows("secrets", Verb::View, Some(n)) && p.allows("secrets", Verb::Edit, Some(n))))
            {
                None => Ok(()),
                Some(name) => Err(ApiError::Forbidden(format!("user {who:?} may not migrate secrets {name:?}"))),
            }
        }
    }
}

/// Whether the caller may refer to secret `name` (in an `apiKeyRef` or a `tokenSecretRef`). A
/// secret it may not view is treated everywhere exactly as a missing one.
pub fn may_refer_to(ctx: &RequestContext, secret: &str) -> bool {
    ctx.may("secrets", Verb::View, Some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_endpoints_and_allowed_origins_only() {
        let upstreams = Upstreams::new(&["https://llm.internal:8443/v1".to_owned()]).unwrap();
        assert!(upstreams.allows(LlmType::Anthropic, None));
        assert!(upstreams.allows(LlmType::Openai, Some("https://api.openai.com/v1")));
        assert!(!upstreams.allows(LlmType::Vllm, Some("https://llm.internal:8443/other")), "outside the path");
        assert!(upstreams.allows(LlmType::Vllm, Some("https://llm.internal:8443/v1")));
        assert!(upstreams.allows(LlmType::Vllm, Some("https://llm.internal:8443/v1/")));
        assert!(upstreams.allows(LlmType::Vllm, Some("https://llm.internal:8443/v1/team-a")));
        assert!(!upstreams.allows(LlmType::Vllm, Some("https://llm.internal:8443/v10")), "segments, not text");
        assert!(!upstreams.allows(LlmType::Vllm, Some("https://llm.internal:8443/v1/../admin")));
        assert!(!upstreams.allows(LlmType::Vllm, Some("https://llm.internal:8443/v1/%2e%2e/admin")));
        assert!(!upstreams.allows(LlmType::Vllm, Some("https://llm.internal:8443/admin#/v1")), "fragment");
        assert!(!upstreams.allows(LlmType::Vllm, Some("https://llm.internal:8443/v1?next=/admin")), "query");
        assert!(!upstreams.allows(LlmType::Vllm, Some("https://user:pw@llm.internal:8443/v1")), "credentials");
        assert!(!upstreams.allows(LlmType::Openai, Some("https://api.openai.com/v1?x=1")));
        assert!(upstreams.allows(LlmType::Openai, Some("https://api.openai.com/anything/below")), "the whole origin");
        assert!(!upstreams.allows(LlmType::Vllm, None), "self-hosted types have no official endpoint");
        assert!(!upstreams.allows(LlmType::Openai, Some("https://api.openai.com.evil.example")));
        assert!(!upstreams.allows(LlmType::Openai, Some("http://api.openai.com")), "the scheme is part of it");
        assert!(!upstreams.allows(LlmType::Vllm, Some("https://llm.internal:9443")), "so is the port");
        assert!(!upstreams.allows(LlmType::Anthropic, Some("http://127.0.0.1:9")));
        assert!(Upstreams::new(&["ftp://x".to_owned()]).is_err());
        assert!(Upstreams::new(&["https://x/v1?a=b".to_owned()]).is_err());
    }
}
