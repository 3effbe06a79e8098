//! Users and tokens, and the bootstrap of an empty store.

use projections::read_models::page::{Order, Page};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::ResourceName;
use domain::rbac::{ADMIN, Permissions, RoleBinding, RoleBindingCommand, RoleBindingSpec};
use domain::token::{Token, TokenCommand};
use domain::user::{BOOTSTRAP_ADMIN, User, UserCommand};
use projections::read_models::tokens::TokenState;
use projections::read_models::users::UserState;
use projections::read_models::{Record, rbac, tokens, users};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::Services;
use domain::document::Kind;

use super::kind::{Answer, Applied, ResourceKind};
use super::writer::Recorded;
use crate::bearer::{self as auth, IssuedToken};
use crate::context::RequestContext;
use crate::error::ApiError;

/// `POST /api/v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenRequest {
    user: String,
    /// A duration (`30d`, `12h`, `90m`, `45s`) or an RFC 3339 time; never expires when absent.
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    description: String,
}

/// How often a token's last use is written, at most.
const USAGE_INTERVAL: Duration = Duration::from_secs(60);

/// When each token's use was last written, so a busy client costs one write a minute.
#[derive(Clone, Default)]
pub struct UsageLog(Arc<Mutex<HashMap<String, Instant>>>);

impl UsageLog {
    pub fn due(&self, id: &str) -> bool {
        let mut seen = self.0.lock().expect("usage lock");
        let now = Instant::now();
        match seen.get(id) {
            Some(last) if now.duration_since(*last) < USAGE_INTERVAL => false,
            _ => {
                seen.insert(id.to_owned(), now);
                true
            }
        }
    }
}

/// What an empty store starts with; see [`Services::bootstrap`].
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    /// The admin's token; a fresh one when `None`.
    pub token: Option<SecretString>,
    /// Where to write the admin's token (mode 0600).
    pub token_file: Option<PathBuf>,
    /// A client config to write (server URL and token) if none exists there yet.
    pub client_config: Option<(PathBuf, String)>,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|e| ApiError::MalformedBody(e.to_string()))
}

fn name_of(field: &str, raw: &str, kind: &'static str) -> Result<ResourceName, ApiError> {
    ResourceName::parse(raw).map_err(|m| {
        let mut errors = domain::ValidationErrors::default();
        errors.add(field, m);
        ApiError::Invalid { kind, errors }
    })
}

/// `30d`, `12h`, `90m`, `45s`, or an RFC 3339 time: when a new token expires.
pub fn expiry(raw: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp, String> {
    let longest = jiff::SignedDuration::from_secs(3650 * 86_400);
    if let Ok(at) = raw.parse::<jiff::Timestamp>() {
        if at <= now {
            return Err(format!("{raw:?} is in the past"));
        }
        return if at.duration_since(now) <= longest {
            Ok(at)
        } else {
            Err(format!("{raw:?} is more than 3650d away"))
        };
    }
    let duration = crate::time::short_duration(raw)
        .ok_or_else(|| format!("{raw:?} is neither a duration (30d, 12h, 90m, 45s) nor an RFC 3339 time"))?;
    if duration <= jiff::SignedDuration::ZERO || duration > longest {
        return Err(format!("{raw:?} must be between 1s and 3650d"));
    }
    now.checked_add(duration).map_err(|e| e.to_string())
}

impl Services {
    /// The union of the roles bound to `user`. A binding naming a role that does not exist grants
    /// nothing. Worked out in memory ([`super::access_cache`]).
    pub async fn permissions_of(&self, user: &str) -> Result<Arc<Permissions>, ApiError> {
        self.access.permissions(&self.store.db, user).await
    }

    pub async fn get_user(&self, name: &str) -> Result<Record<UserState>, ApiError> {
        users::get(&self.store.db, name).await?.ok_or_else(|| ApiError::not_found(domain::document::Kind::User, name))
    }

    pub async fn create_user(
        &self,
        ctx: &RequestContext,
        body: Value,
        dry_run: bool,
    ) -> Result<Applied<Record<UserState>>, ApiError> {
        let (name, request) = super::parse_document::<domain::user::UserInput>(body, None)?;
        let command = UserCommand::CreateUser { name: name.clone(), description: request.description.clone() };
        if dry_run {
            self.writer.rehearse::<User>(&name, command).await?;
            let now = jiff::Timestamp::now().to_string();
            let spec = UserState { description: request.description };
            let record =
                Record { name: name.to_string(), spec, resource_version: 1, created_at: now.clone(), updated_at: now };
            return Ok(Applied::Done(record));
        }
        self.writer.execute::<User>(ctx, &name, command).await?.then(self.get_user(name.as_str())).await
    }

    /// Deletes a user after revoking every token of theirs and taking them out of every role
    /// binding (deleting a binding left with nobody), each an event, so that a user created
    /// again later under the same name starts with nothing. The last user cannot go (nobody
    /// could log in), nor the last user holding `admin` (nobody could administer mcpd). A crash
    /// part-way leaves the user with fewer tokens or bindings; deleting again finishes the job.
    pub async fn delete_user(
        &self,
        ctx: &RequestContext,
        name: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Result<Applied<()>, ApiError> {
        let name = name_of("name", name, "user")?;
        check_version(Kind::User, &self.get_user(name.as_str()).await?, expected_version)?;
        if users::list(&self.store.db).await?.len() <= 1 {
            return Err(ApiError::Conflict(format!("user {:?} is the last user; nobody could log in", name.as_str())));
        }
        let bindings = rbac::bindings(&self.store.db).await?;
        let holds_admin =
            |user: &str| bindings.iter().any(|b| b.spec.role == ADMIN && b.spec.users.iter().any(|u| u == user));
        if holds_admin(name.as_str()) {
            let others = bindings.iter().filter(|b| b.spec.role == ADMIN).flat_map(|b| &b.spec.users);
            let mut another = false;
            for user in others.filter(|u| *u != name.as_str()) {
                if users::get(&self.store.db, user).await?.is_some() {
                    another = true;
                    break;
                }
            }
            if !another {
                return Err(ApiError::Conflict(format!(
                    "user {:?} is the last user who holds the admin role; nobody could administer mcpd",
                    name.as_str()
                )));
            }
        }
        if dry_run {
            return Ok(Applied::Done(()));
        }
        let mut recorded = Recorded::Visible;
        for token in tokens::list(&self.store.db).await?.into_iter().filter(|t| t.spec.user == name.as_str()) {
            recorded = recorded.and(self.revoke(ctx, &token.name).await?);
        }
        for binding in bindings.iter().filter(|b| b.spec.users.iter().any(|u| u == name.as_str())) {
            let binding_name = ResourceName::parse(&binding.name).map_err(|m| anyhow::anyhow!("binding name: {m}"))?;
            let expected_version = Some(binding.resource_version as u64);
            let users: Vec<String> = binding.spec.users.iter().filter(|u| *u != name.as_str()).cloned().collect();
            let command = if users.is_empty() {
                RoleBindingCommand::Delete { name: binding_name.clone(), expected_version }
            } else {
                let spec = RoleBindingSpec { users, ..binding.spec.clone() };
                RoleBindingCommand::Update { name: binding_name.clone(), spec, expected_version }
            };
            recorded = recorded.and(self.writer.execute::<RoleBinding>(ctx, &binding_name, command).await?);
        }
        let command = UserCommand::DeleteUser { name: name.clone() };
        recorded = recorded.and(self.writer.execute::<User>(ctx, &name, command).await?);
        recorded.then(async { Ok(()) }).await
    }

    pub async fn get_token(&self, id: &str) -> Result<Record<TokenState>, ApiError> {
        tokens::get(&self.store.db, id)
            .await?
            .filter(|t| !t.spec.revoked)
            .ok_or_else(|| ApiError::not_found(domain::document::Kind::Token, id))
    }

    /// Issues a token; the token itself is in the answer and nowhere else. A dry run checks
    /// every rule and answers the token's document as it would be, with no token: nothing is
    /// generated, recorded, or able to authenticate.
    pub async fn issue_token(
        &self,
        ctx: &RequestContext,
        body: Value,
        dry_run: bool,
    ) -> Result<(Applied<Record<TokenState>>, Option<IssuedToken>), ApiError> {
        let request: TokenRequest = parse_body(body)?;
        let user = name_of("user", &request.user, "token")?;
        let expires_at = match &request.expires {
            None => None,
            Some(raw) => Some(
                expiry(raw, jiff::Timestamp::now())
                    .map_err(|m| {
                        let mut errors = domain::ValidationErrors::default();
                        errors.add("expires", m);
                        ApiError::Invalid { kind: "token", errors }
                    })?
                    .to_string(),
            ),
        };
        // A token for someone else acts as them from then on, with whatever they are granted
        // later: impersonation, asked before anything about the user is looked up (so the
        // answer says nothing of which users exist).
        if user.as_str() != ctx.actor && !ctx.permissions.may_impersonate(user.as_str()) {
            return Err(ApiError::Forbidden(format!(
                "user {:?} may not issue a token for user {:?}: a token acts as its user, which needs {} on them",
                ctx.actor,
                user.as_str(),
                domain::rbac::IMPERSONATE
            )));
        }
        if dry_run {
            if users::get(&self.store.db, user.as_str()).await?.is_none() {
                // The answer the aggregate gives a real issue.
                let refused = domain::token::TokenError::NoSuchUser(user);
                return Err(ApiError::from_refusal(domain::token::AGGREGATE_TYPE, refused));
            }
            let spec = TokenState {
                user: user.as_str().to_owned(),
                hash: String::new(),
                expires_at,
                description: request.description,
                revoked: false,
                last_used_at: None,
            };
            let now = jiff::Timestamp::now().to_string();
            let record =
                Record { name: String::new(), spec, resource_version: 1, created_at: now.clone(), updated_at: now };
            return Ok((Applied::Done(record), None));
        }
        let issued = auth::generate()?;
        let recorded = self.record_token(ctx, &issued, user, expires_at, request.description).await?;
        // The token is in the answer whatever the read model shows: it is never shown again.
        Ok((recorded.then(self.get_token(&issued.id)).await?, Some(issued)))
    }

    async fn record_token(
        &self,
        ctx: &RequestContext,
        issued: &IssuedToken,
        user: ResourceName,
        expires_at: Option<String>,
        description: String,
    ) -> Result<Recorded, ApiError> {
        let user_exists = users::get(&self.store.db, user.as_str()).await?.is_some();
        let id = name_of("id", &issued.id, "token")?;
        let command = TokenCommand::IssueToken {
            id: issued.id.clone(),
            user,
            user_exists,
            hash: issued.hash.clone(),
            expires_at,
            description,
        };
        self.writer.execute::<Token>(ctx, &id, command).await
    }

    /// Revokes a token: the next request with it is refused.
    pub async fn revoke_token(
        &self,
        ctx: &RequestContext,
        id: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Result<Applied<()>, ApiError> {
        check_version(Kind::Token, &self.get_token(id).await?, expected_version)?;
        if dry_run {
            return Ok(Applied::Done(()));
        }
        self.revoke(ctx, id).await?.then(async { Ok(()) }).await
    }

    async fn revoke(&self, ctx: &RequestContext, id: &str) -> Result<Recorded, ApiError> {
        let name = ResourceName::parse(id).map_err(|_| ApiError::not_found(domain::document::Kind::Token, id))?;
        self.writer.execute::<Token>(ctx, &name, TokenCommand::RevokeToken { id: id.to_owned() }).await
    }

    /// On the first start of an empty store: the `admin` user and a token for it, written where
    /// `bootstrap` says. Later starts (and a deleted admin) change nothing.
    pub async fn bootstrap(&self, bootstrap: &Bootstrap) -> Result<(), ApiError> {
        if self.store.log.latest_position_of(domain::user::AGGREGATE_TYPE, BOOTSTRAP_ADMIN).await?.is_some() {
            return self.bootstrap_admin_binding().await;
        }
        let ctx = RequestContext::system("bootstrap");
        let admin = ResourceName::parse(BOOTSTRAP_ADMIN).expect("a valid name");
        let command = UserCommand::CreateUser { name: admin.clone(), description: "created at the first start".into() };
        match self.writer.execute::<User>(&ctx, &admin, command).await {
            // Lagging or not, it is recorded.
            Ok(_) => {}
            // Another mcpd on the same store got there first.
            Err(ApiError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        let issued = match &bootstrap.token {
            Some(token) => auth::adopt(token.clone())?,
            None => auth::generate()?,
        };
        let _recorded = self.record_token(&ctx, &issued, admin, None, "the bootstrap admin token".into()).await?;
        self.bootstrap_admin_binding().await?;
        match &bootstrap.token_file {
            Some(path) => {
                write_private(path, &format!("{}\n", issued.token.expose_secret()))?;
                tracing::info!(file = %path.display(), "created user admin; its token is in the file (mode 0600)");
            }
            None if bootstrap.token.is_some() => {
                tracing::info!("created user admin with the token from MCPD_BOOTSTRAP_TOKEN")
            }
            None => tracing::warn!("created user admin, but its token was written nowhere"),
        }
        if let Some((path, server)) = &bootstrap.client_config
            && !path.exists()
        {
            let config = serde_json::json!({"server": server, "token": issued.token.expose_secret()});
            write_private(path, &serde_json::to_string_pretty(&config).expect("a config serialises"))?;
            tracing::info!(file = %path.display(), "wrote a client config for mcpctl");
        }
        Ok(())
    }
}

/// Writes `text` to a new file only its owner may read.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    use std::os::unix::fs::PermissionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // An existing file keeps its mode on open; make sure it is private.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// 409 when `If-Match` names another version than `current`'s.
fn check_version<S>(kind: Kind, current: &Record<S>, expected: Option<u64>) -> Result<(), ApiError> {
    match expected {
        Some(expected) if expected != current.resource_version as u64 => Err(ApiError::Conflict(format!(
            "{kind} {:?} is at resourceVersion {}, not {expected}",
            current.name, current.resource_version
        ))),
        _ => Ok(()),
    }
}

/// The `user` kind: listed, read, created and deleted like every kind; never replaced.
pub struct Users;

impl ResourceKind for Users {
    const REPLACEABLE: bool = false;
    type Spec = UserState;

    async fn list(s: &Services, _reveal: bool, page: Page) -> Answer<Vec<Record<Self::Spec>>> {
        Ok(users::list_page(&s.store.db, &page).await?)
    }
    async fn get(s: &Services, name: &str, _reveal: bool) -> Answer<Record<Self::Spec>> {
        s.get_user(name).await
    }
    async fn create(
        s: &Services,
        ctx: &RequestContext,
        body: Value,
        dry_run: bool,
    ) -> Answer<Applied<Record<Self::Spec>>> {
        s.create_user(ctx, body, dry_run).await
    }
    async fn delete(
        s: &Services,
        ctx: &RequestContext,
        name: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Answer<Applied<()>> {
        s.delete_user(ctx, name, expected_version, dry_run).await
    }
}

/// The `token` kind: listed, read and revoked (deleted) like every kind; issued by its own
/// route, whose answer carries the token.
pub struct Tokens;

impl ResourceKind for Tokens {
    const REPLACEABLE: bool = false;
    const GENERIC_CREATE: bool = false;
    type Spec = TokenState;

    const ORDER: Order = tokens::ORDER;
    async fn list(s: &Services, _reveal: bool, page: Page) -> Answer<Vec<Record<Self::Spec>>> {
        Ok(tokens::list_page(&s.store.db, &page).await?)
    }
    async fn get(s: &Services, id: &str, _reveal: bool) -> Answer<Record<Self::Spec>> {
        s.get_token(id).await
    }
    async fn delete(
        s: &Services,
        ctx: &RequestContext,
        id: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Answer<Applied<()>> {
        s.revoke_token(ctx, id, expected_version, dry_run).await
    }
}

#[cfg(test)]
mod tests {
    use super::expiry;

    #[test]
    fn expiry_takes_durations_and_times() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(expiry("30d", now).unwrap().to_string(), "2026-01-31T00:00:00Z");
        assert_eq!(expiry("90m", now).unwrap().to_string(), "2026-01-01T01:30:00Z");
        assert_eq!(expiry("2026-02-01T00:00:00Z", now).unwrap().to_string(), "2026-02-01T00:00:00Z");
        assert!(expiry("2025-01-01T00:00:00Z", now).unwrap_err().contains("past"));
        assert!(expiry("0d", now).is_err());
        assert!(expiry("3w", now).is_err());
        assert!(expiry("d", now).is_err());
        assert!(expiry("99999d", now).is_err());
        assert!(expiry("9999-01-01T00:00:00Z", now).unwrap_err().contains("3650d"));
    }
}
