//! Roles and role bindings: custom roles beside the three built in, bindings granting a role to
//! users, with the guard rails (nobody grants more than they hold; the last admin binding stays).

use domain::ResourceName;
use domain::rbac::{
    ADMIN, Permissions, Role, RoleBinding, RoleBindingCommand, RoleBindingInput, RoleBindingSpec, RoleCommand,
    RoleInput, RoleSpec, built_in,
};
use projections::read_models::page::Page;
use projections::read_models::{Record, rbac, users};
use serde_json::Value;

use super::kind::{Answer, Applied, ResourceKind};
use super::{Services, parse_document};
use crate::context::RequestContext;
use crate::error::ApiError;
use domain::rbac::{Operation, Verb};

impl Services {
    /// Nobody defines or grants more than they hold.
    fn check_covers(ctx: &RequestContext, what: &str, spec: &RoleSpec) -> Result<(), ApiError> {
        if ctx.permissions.covers(spec) {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!("user {:?} may not {what}: it grants more than the user holds", ctx.actor)))
    }

    /// Parses a binding and checks what it refers to: the role and the users must exist, and
    /// the caller must hold everything the role grants.
    async fn checked_binding(
        &self,
        ctx: &RequestContext,
        body: Value,
        url_name: Option<&str>,
    ) -> Result<(ResourceName, RoleBindingSpec), ApiError> {
        let (name, spec) = parse_document::<RoleBindingInput>(body, url_name)?;
        // What the binding names but does not exist (yet): 409, once the document is valid.
        let mut missing = domain::ValidationErrors::default();
        let role = match built_in(&spec.role) {
            Some(role) => Some(role),
            None => rbac::role(&self.store.db, &spec.role).await?.map(|r| r.spec),
        };
        if role.is_none() {
            missing.add("role", format!("role {:?} does not exist", spec.role));
        }
        for user in &spec.users {
            if users::get(&self.store.db, user).await?.is_none() {
                missing.add("users", format!("user {user:?} does not exist"));
            }
        }
        let Some(role) = role.filter(|_| missing.is_empty()) else {
            return Err(ApiError::Unresolved { kind: "rolebinding", errors: missing });
        };
        Self::check_covers(ctx, &format!("bind role {:?}", spec.role), &role)?;
        Ok((name, spec))
    }

    /// 409 if changing binding `name` (to `next`, or deleting it) would leave no binding that
    /// grants `admin` to a user.
    async fn keep_an_admin(&self, name: &str, next: Option<&RoleBindingSpec>) -> Result<(), ApiError> {
        let grants_admin = |spec: &RoleBindingSpec| spec.role == ADMIN && !spec.users.is_empty();
        if next.is_some_and(grants_admin) {
            return Ok(());
        }
        let others = rbac::bindings(&self.store.db).await?.into_iter().filter(|b| b.name != name);
        let mut remaining = false;
        for binding in others.filter(|b| grants_admin(&b.spec)) {
            for user in &binding.spec.users {
                remaining |= users::get(&self.store.db, user).await?.is_some();
            }
        }
        let current = rbac::binding(&self.store.db, name).await?;
        if !remaining && current.is_some_and(|b| grants_admin(&b.spec)) {
            return Err(ApiError::Conflict(format!(
                "rolebinding {name:?} is the last that grants the admin role; nobody could administer mcpd"
            )));
        }
        Ok(())
    }

    /// The bootstrap admin's binding, made once per store (also for stores older than RBAC).
    pub(crate) async fn bootstrap_admin_binding(&self) -> Result<(), ApiError> {
        let admin = domain::user::BOOTSTRAP_ADMIN;
        if self.store.log.latest_position_of(domain::rbac::BINDING_AGGREGATE_TYPE, admin).await?.is_some() {
            return Ok(());
        }
        let ctx = RequestContext::system("bootstrap");
        let name = ResourceName::parse(admin).expect("a valid name");
        let spec = RoleBindingSpec {
            description: "the bootstrap admin".into(),
            role: ADMIN.into(),
            users: vec![admin.into()],
        };
        match self
            .writer
            .execute::<RoleBinding>(&ctx, &name, RoleBindingCommand::Create { name: name.clone(), spec })
            .await
        {
            // Lagging or not, it is recorded.
            Ok(_) | Err(ApiError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// What a create would make, for a dry run.
fn preview<S>(name: &str, spec: S) -> Record<S> {
    let now = jiff::Timestamp::now().to_string();
    Record { name: name.to_owned(), spec, resource_version: 1, created_at: now.clone(), updated_at: now }
}

/// What a dry-run update would make of `current`: `spec` at the next version when it `changes`.
fn updated<S>(current: Record<S>, spec: S, changes: bool) -> Record<S> {
    if !changes {
        return current;
    }
    Record { spec, resource_version: current.resource_version + 1, ..current }
}

fn built_in_record(name: &str, spec: RoleSpec) -> Record<RoleSpec> {
    Record { name: name.to_owned(), spec, resource_version: 0, created_at: String::new(), updated_at: String::new() }
}

/// What `can-i` answers. An operation (`run:infer`) may name what it acts on: `run:infer` on
/// `llms` `claude-fast`. A verb or operation mcpd does not know is allowed to nobody.
pub fn can(permissions: &Permissions, verb: &str, resource: Option<&str>, name: Option<&str>) -> bool {
    if let Some(verb) = Verb::parse(verb) {
        return resource.is_some_and(|resource| permissions.allows(resource, verb, name));
    }
    match (Operation::parse(verb), name) {
        (None, _) => false,
        (Some(operation), Some(name)) => permissions.allows_operation_on(operation, name),
        (Some(operation), None) => permissions.allows_operation(operation),
    }
}

/// The `role` kind: its operations, as the generic resource routes call them.
pub struct Roles;

impl ResourceKind for Roles {
    type Spec = RoleSpec;

    /// Every role: the built-in ones first (resourceVersion 0), then the custom ones by name.
    /// A page after a built-in one continues with the next built-in one; no custom role can
    /// bear a built-in name.
    async fn list(s: &Services, _reveal: bool, page: Page) -> Answer<Vec<Record<Self::Spec>>> {
        const BUILT_IN: [&str; 4] = domain::rbac::BUILT_IN_ROLES;
        let start = match &page.after {
            None => 0,
            Some(after) => BUILT_IN.iter().position(|b| *b == after.name).map_or(BUILT_IN.len(), |i| i + 1),
        };
        let limit = page.limit.map_or(usize::MAX, |l| l.max(0) as usize);
        let mut roles: Vec<Record<RoleSpec>> = BUILT_IN[start..]
            .iter()
            .filter_map(|name| built_in(name).map(|spec| built_in_record(name, spec)))
            .take(limit)
            .collect();
        if roles.len() < limit {
            let after = page.after.filter(|a| !BUILT_IN.contains(&a.name.as_str()));
            let rest = page.limit.map(|l| l - roles.len() as i64);
            roles.extend(rbac::roles_page(&s.store.db, &Page { after, limit: rest }).await?);
        }
        Ok(roles)
    }

    async fn get(s: &Services, name: &str, _reveal: bool) -> Answer<Record<Self::Spec>> {
        if let Some(spec) = built_in(name) {
            return Ok(built_in_record(name, spec));
        }
        rbac::role(&s.store.db, name).await?.ok_or_else(|| ApiError::not_found(domain::document::Kind::Role, name))
    }

    async fn create(
        s: &Services,
        ctx: &RequestContext,
        body: Value,
        dry_run: bool,
    ) -> Answer<Applied<Record<Self::Spec>>> {
        let (name, spec) = parse_document::<RoleInput>(body, None)?;
        Services::check_covers(ctx, &format!("create role {:?}", name.as_str()), &spec)?;
        if dry_run {
            if built_in(name.as_str()).is_some() || rbac::role(&s.store.db, name.as_str()).await?.is_some() {
                return Err(ApiError::Conflict(format!("role {:?} already exists", name.as_str())));
            }
            return Ok(Applied::Done(preview(name.as_str(), spec)));
        }
        s.writer
            .execute::<Role>(ctx, &name, RoleCommand::Create { name: name.clone(), spec })
            .await?
            .then(Self::get(s, name.as_str(), false))
            .await
    }

    async fn replace(
        s: &Services,
        ctx: &RequestContext,
        url_name: &str,
        body: Value,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Answer<Applied<Record<Self::Spec>>> {
        if built_in(url_name).is_some() {
            return Err(ApiError::Conflict(format!("role {url_name:?} is built in and cannot be changed")));
        }
        let (name, spec) = parse_document::<RoleInput>(body, Some(url_name))?;
        Services::check_covers(ctx, &format!("edit role {:?}", name.as_str()), &spec)?;
        // The aggregate checks the version, and records nothing when nothing changes (apply
        // says "unchanged").
        let command = RoleCommand::Update { name: name.clone(), spec: spec.clone(), expected_version };
        if dry_run {
            let (events, _) = s.writer.rehearse::<Role>(&name, command).await?;
            return Ok(Applied::Done(updated(Self::get(s, name.as_str(), false).await?, spec, !events.is_empty())));
        }
        s.writer.execute::<Role>(ctx, &name, command).await?.then(Self::get(s, name.as_str(), false)).await
    }

    async fn delete(
        s: &Services,
        ctx: &RequestContext,
        name: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Answer<Applied<()>> {
        if built_in(name).is_some() {
            return Err(ApiError::Conflict(format!("role {name:?} is built in and cannot be deleted")));
        }
        let name = ResourceName::parse(name).map_err(|_| ApiError::not_found(domain::document::Kind::Role, name))?;
        let bound_by: Vec<String> = rbac::bindings(&s.store.db)
            .await?
            .into_iter()
            .filter(|b| b.spec.role == name.as_str())
            .map(|b| b.name)
            .collect();
        let command = RoleCommand::Delete { name: name.clone(), bound_by, expected_version };
        s.writer.delete::<Role>(ctx, &name, command, dry_run).await
    }
}

/// The `rolebinding` kind: its operations, as the generic resource routes call them.
pub struct RoleBindings;

impl ResourceKind for RoleBindings {
    type Spec = RoleBindingSpec;

    async fn list(s: &Services, _reveal: bool, page: Page) -> Answer<Vec<Record<Self::Spec>>> {
        Ok(rbac::bindings_page(&s.store.db, &page).await?)
    }

    async fn get(s: &Services, name: &str, _reveal: bool) -> Answer<Record<Self::Spec>> {
        rbac::binding(&s.store.db, name)
            .await?
            .ok_or_else(|| ApiError::not_found(domain::document::Kind::RoleBinding, name))
    }

    async fn create(
        s: &Services,
        ctx: &RequestContext,
        body: Value,
        dry_run: bool,
    ) -> Answer<Applied<Record<Self::Spec>>> {
        let (name, spec) = s.checked_binding(ctx, body, None).await?;
        if dry_run {
            if rbac::binding(&s.store.db, name.as_str()).await?.is_some() {
                return Err(ApiError::Conflict(format!("rolebinding {:?} already exists", name.as_str())));
            }
            return Ok(Applied::Done(preview(name.as_str(), spec)));
        }
        let command = RoleBindingCommand::Create { name: name.clone(), spec };
        s.writer.execute::<RoleBinding>(ctx, &name, command).await?.then(Self::get(s, name.as_str(), false)).await
    }

    async fn replace(
        s: &Services,
        ctx: &RequestContext,
        url_name: &str,
        body: Value,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Answer<Applied<Record<Self::Spec>>> {
        let (name, spec) = s.checked_binding(ctx, body, Some(url_name)).await?;
        s.keep_an_admin(name.as_str(), Some(&spec)).await?;
        let command = RoleBindingCommand::Update { name: name.clone(), spec: spec.clone(), expected_version };
        if dry_run {
            let (events, _) = s.writer.rehearse::<RoleBinding>(&name, command).await?;
            return Ok(Applied::Done(updated(Self::get(s, name.as_str(), false).await?, spec, !events.is_empty())));
        }
        s.writer.execute::<RoleBinding>(ctx, &name, command).await?.then(Self::get(s, name.as_str(), false)).await
    }

    async fn delete(
        s: &Services,
        ctx: &RequestContext,
        name: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Answer<Applied<()>> {
        let name =
            ResourceName::parse(name).map_err(|_| ApiError::not_found(domain::document::Kind::RoleBinding, name))?;
        s.keep_an_admin(name.as_str(), None).await?;
        let command = RoleBindingCommand::Delete { name: name.clone(), expected_version };
        s.writer.delete::<RoleBinding>(ctx, &name, command, dry_run).await
    }
}

#[cfg(test)]
mod tests {
    use domain::rbac::{Permissions, RoleSpec, Rule};

    use super::can;

    #[test]
    fn can_i_allows_no_verb_or_operation_nobody_knows() {
        let rule = Rule { resources: vec!["llms".into()], verbs: vec!["*".into()], ..Rule::default() };
        let every_verb = Permissions::new([RoleSpec { description: String::new(), rules: vec![rule] }]);
        assert!(can(&every_verb, "view", Some("llms"), None));
        assert!(can(&every_verb, "delete", Some("llms"), Some("x")));
        // A `*` verb once matched any word asked about, granted or not.
        assert!(!can(&every_verb, "bogus", Some("llms"), None));
        assert!(!can(&every_verb, "run:everything", None, None));
        assert!(!can(&every_verb, "view", None, None), "a verb asks about a resource");
    }
}
