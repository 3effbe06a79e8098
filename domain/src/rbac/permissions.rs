//! What a user may do: the union of their roles' rules, and the questions asked of it.

use super::{RESOURCES, RoleSpec, Rule, VERBS};

/// What a user may do: the union of their roles' rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    rules: Vec<Rule>,
}

fn matches(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x == item || x == "*")
}

impl Permissions {
    pub fn new(roles: impl IntoIterator<Item = RoleSpec>) -> Permissions {
        Permissions { rules: roles.into_iter().flat_map(|r| r.rules).collect() }
    }

    /// May the holder `verb` the `resource` named `name` (`None`: the collection, or any)?
    pub fn allows(&self, resource: &str, verb: &str, name: Option<&str>) -> bool {
        self.rules.iter().any(|rule| {
            matches(&rule.resources, resource)
                && matches(&rule.verbs, verb)
                && match (&rule.names, name) {
                    (None, _) => true,
                    (Some(names), Some(name)) => names.iter().any(|n| n == name),
                    (Some(_), None) => false,
                }
        })
    }

    /// May the holder `verb` some (not necessarily every) `resource`? Lists are filtered then.
    pub fn allows_some(&self, resource: &str, verb: &str) -> bool {
        self.rules.iter().any(|rule| matches(&rule.resources, resource) && matches(&rule.verbs, verb))
    }

    pub fn allows_operation(&self, operation: &str) -> bool {
        self.rules.iter().any(|rule| rule.operations.iter().any(|o| o == operation))
    }

    /// Whether everything `role` grants is granted here too: nobody grants more than they hold.
    pub fn covers(&self, role: &RoleSpec) -> bool {
        role.rules.iter().all(|rule| {
            let resources: Vec<&str> = if rule.resources.iter().any(|r| r == "*") {
                RESOURCES.to_vec()
            } else {
                rule.resources.iter().map(String::as_str).collect()
            };
            let verbs: Vec<&str> = if rule.verbs.iter().any(|v| v == "*") {
                VERBS.to_vec()
            } else {
                rule.verbs.iter().map(String::as_str).collect()
            };
            let crud = resources.iter().all(|resource| {
                verbs.iter().all(|verb| match &rule.names {
                    None => self.allows(resource, verb, None) && !self.scoped(resource, verb),
                    Some(names) => names.iter().all(|n| self.allows(resource, verb, Some(n))),
                })
            });
            crud && rule.operations.iter().all(|o| self.allows_operation(o))
        })
    }

    /// Whether everything `other` holds is held here too: issuing a token for another user needs
    /// every permission that user has.
    pub fn covers_all(&self, other: &Permissions) -> bool {
        self.covers(&RoleSpec { description: String::new(), rules: other.rules.clone() })
    }

    /// Whether the holder may read the values of secret `name`: `reveal:secrets` and `view` on
    /// it by name. Directing a credential anywhere is allowed to exactly these holders.
    pub fn may_reveal(&self, secret: &str) -> bool {
        self.allows_operation("reveal:secrets") && self.allows("secrets", "view", Some(secret))
    }

    /// Whether the holder may read every secret's values, present and future.
    pub fn may_reveal_all(&self) -> bool {
        self.allows_operation("reveal:secrets") && self.allows("secrets", "view", None)
    }

    /// Whether the holder's grant of `verb` on `resource` is limited to names only.
    fn scoped(&self, resource: &str, verb: &str) -> bool {
        !self
            .rules
            .iter()
            .any(|rule| matches(&rule.resources, resource) && matches(&rule.verbs, verb) && rule.names.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::spec::tests::scoped;
    use crate::rbac::{ADMIN, EDITOR, Rule, VIEWER, built_in};

    #[test]
    fn name_scoped_rules_allow_those_names_only() {
        let p = Permissions::new([scoped()]);
        assert!(p.allows("llms", "view", Some("claude-fast")));
        assert!(!p.allows("llms", "view", Some("gpt-heavy")));
        assert!(!p.allows("llms", "view", None), "not the whole collection");
        assert!(p.allows_some("llms", "view"), "but a filtered list");
        assert!(!p.allows("llms", "delete", Some("claude-fast")));
    }

    #[test]
    fn nobody_grants_more_than_they_hold() {
        let admin = Permissions::new(built_in(ADMIN));
        let editor = Permissions::new(built_in(EDITOR));
        let scoped_holder = Permissions::new([scoped()]);
        assert!(admin.covers(&built_in(EDITOR).unwrap()) && admin.covers(&scoped()));
        assert!(!editor.covers(&built_in(ADMIN).unwrap()));
        assert!(editor.covers(&built_in(VIEWER).unwrap()));
        assert!(scoped_holder.covers(&scoped()));
        let mut wider = scoped();
        wider.rules[0].names = None;
        assert!(!scoped_holder.covers(&wider), "a name-scoped grant does not cover the whole kind");
        assert!(admin.covers_all(&editor) && !editor.covers_all(&admin) && !scoped_holder.covers_all(&editor));
        assert!(editor.covers_all(&Permissions::default()));
    }

    #[test]
    fn revealing_needs_the_operation_and_the_name() {
        let admin = Permissions::new(built_in(ADMIN));
        let editor = Permissions::new(built_in(EDITOR));
        let mut rules = scoped().rules;
        rules.push(Rule {
            resources: vec!["secrets".into()],
            verbs: vec!["view".into()],
            names: Some(vec!["team-a".into()]),
            operations: vec![],
        });
        rules.push(Rule { operations: vec!["reveal:secrets".into()], ..Rule::default() });
        let team_a = Permissions::new([RoleSpec { description: String::new(), rules }]);
        assert!(admin.may_reveal("x") && admin.may_reveal_all());
        assert!(!editor.may_reveal("x") && !editor.may_reveal_all());
        assert!(team_a.may_reveal("team-a") && !team_a.may_reveal("team-b") && !team_a.may_reveal_all());
    }
}
