//! The role bindings and roles held in memory, and loading them (whole, or the changed ones).

use std::collections::HashMap;

use domain::rbac::{Permissions, RoleBindingSpec, RoleSpec, built_in};
use projections::Database;
use projections::read_models::rbac;

use crate::error::ApiError;

/// Who is bound to what, as the read models say.
#[derive(Default)]
pub(super) struct Rbac {
    pub(super) bindings: HashMap<String, RoleBindingSpec>,
    pub(super) roles: HashMap<String, RoleSpec>,
}

impl Rbac {
    /// The union of the roles bound to `user`; a binding naming a role that does not exist
    /// grants nothing, nor does an unshown binding or role (`unshown` says which).
    pub(super) fn permissions_of(&self, user: &str, unshown: impl Fn(&str, &str) -> bool) -> Permissions {
        let roles = self
            .bindings
            .iter()
            .filter(|(name, b)| {
                b.users.iter().any(|u| u == user) && !unshown(domain::rbac::BINDING_AGGREGATE_TYPE, name)
            })
            .filter_map(|(_, b)| {
                built_in(&b.role).or_else(|| {
                    self.roles.get(&b.role).filter(|_| !unshown(domain::rbac::ROLE_AGGREGATE_TYPE, &b.role)).cloned()
                })
            });
        Permissions::new(roles.collect::<Vec<_>>())
    }

    /// The users a role reaches through bindings.
    pub(super) fn users_of_role(&self, role: &str) -> Vec<String> {
        self.bindings.values().filter(|b| b.role == role).flat_map(|b| b.users.clone()).collect()
    }
}

/// What a permission look-up read from the database.
pub(super) enum Loaded {
    Everything(Rbac),
    /// The stale bindings and roles as they now are (`None`: deleted).
    Changed(Vec<(String, Option<RoleBindingSpec>)>, Vec<(String, Option<RoleSpec>)>),
}

pub(super) async fn load(
    db: &Database,
    everything: bool,
    bindings: &[String],
    roles: &[String],
) -> Result<Loaded, ApiError> {
    if everything {
        let bindings = rbac::bindings(db).await?.into_iter().map(|b| (b.name, b.spec)).collect();
        let roles = rbac::roles(db).await?.into_iter().map(|r| (r.name, r.spec)).collect();
        return Ok(Loaded::Everything(Rbac { bindings, roles }));
    }
    let mut changed_bindings = Vec::new();
    for name in bindings {
        changed_bindings.push((name.clone(), rbac::binding(db, name).await?.map(|b| b.spec)));
    }
    let mut changed_roles = Vec::new();
    for name in roles {
        changed_roles.push((name.clone(), rbac::role(db, name).await?.map(|r| r.spec)));
    }
    Ok(Loaded::Changed(changed_bindings, changed_roles))
}
