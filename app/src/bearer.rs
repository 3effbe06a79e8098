//! The bearer token format. A token is `mcpd_<id>_<secret>`: the id names the token's aggregate
//! (so a request finds its row in one look-up, and `mcpctl get tokens` can show it), the secret
//! is 256 random bits. mcpd keeps only the SHA-256 of the whole token. Pure functions, no I/O.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const PREFIX: &str = "mcpd_";

/// A token as issued: shown once, then only its hash is kept.
pub struct IssuedToken {
    pub id: String,
    pub token: SecretString,
    pub hash: String,
}

/// A fresh token: a new id and 256 bits from the operating system's CSPRNG.
pub fn generate() -> anyhow::Result<IssuedToken> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).map_err(|e| anyhow::anyhow!("the system random source failed: {e}"))?;
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("the system random source failed: {e}"))?;
    let id = format!("tok-{}", hex::encode(id));
    let token = SecretString::from(format!("{PREFIX}{id}_{}", hex::encode(secret)));
    let hash = hash(token.expose_secret());
    Ok(IssuedToken { id, token, hash })
}

/// A token given from outside (`MCPD_BOOTSTRAP_TOKEN`): its id comes from its own form when it
/// has mcpd's, otherwise from its hash.
pub fn adopt(token: SecretString) -> anyhow::Result<IssuedToken> {
    let raw = token.expose_secret();
    if raw.len() < 32 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!("a bootstrap token must be at least 32 printable characters without spaces");
    }
    let hash = hash(raw);
    let id = match token_id(raw) {
        Some(id) => id.to_owned(),
        None => format!("tok-{}", &hash[..16]),
    };
    Ok(IssuedToken { id, token, hash })
}

/// Hex SHA-256.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The id inside a token of mcpd's form.
pub fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.rsplit_once('_')?;
    (id.starts_with("tok-") && !secret.is_empty()).then_some(id)
}

/// The token in an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 7235).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzzed: any Authorization value yields a token only for the bearer scheme, and any token
    /// text an id only in mcpd's form; never a panic.
    #[test]
    fn any_authorization_value_is_read_or_refused() {
        use proptest::prelude::*;
        let value = prop_oneof!["\\PC{0,60}", "(?i:bearer)[ \t]{0,3}\\PC{0,40}", "mcpd_tok-[a-z0-9]{0,8}_\\PC{0,10}"];
        proptest::test_runner::TestRunner::new(testkit::fuzz_config("bearer parsing"))
            .run(&value, |value| {
                if let Some(token) = bearer(&value) {
                    prop_assert!(value.trim_start().to_ascii_lowercase().starts_with("bearer "));
                    prop_assert!(!token.is_empty() && token == token.trim());
                }
                if let Some(id) = token_id(&value) {
                    prop_assert!(id.starts_with("tok-") && value.starts_with(PREFIX));
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn tokens_carry_their_id_and_256_random_bits() {
        let issued = generate().unwrap();
        let raw = issued.token.expose_secret();
        assert_eq!(token_id(raw), Some(issued.id.as_str()));
        let secret = raw.rsplit_once('_').unwrap().1;
        assert_eq!(secret.len(), 64, "32 bytes, hex");
        assert_eq!(issued.hash, hash(raw));
        assert_ne!(generate().unwrap().hash, issued.hash);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn a_foreign_bootstrap_token_gets_an_id_from_its_hash() {
        let adopted = adopt(SecretString::from("x".repeat(40))).unwrap();
        assert!(adopted.id.starts_with("tok-"));
        assert!(adopt(SecretString::from("short".to_owned())).is_err());
        assert!(adopt(SecretString::from(format!("{} with space", "x".repeat(40)))).is_err());
    }
}
