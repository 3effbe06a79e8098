//! What a user may do: the union of their roles' rules, and the questions asked of it.

use super::{Operation, RESOURCES, RoleSpec, Rule, Verb};

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
    pub fn allows(&self, resource: &str, verb: Verb, name: Option<&str>) -> bool {
        self.rules.iter().any(|rule| {
            matches(&rule.resources, resource)
                && matches(&rule.verbs, verb.as_str())
                && match (&rule.names, name) {
                    (None, _) => true,
                    (Some(names), Some(name)) => names.iter().any(|n| n == name),
                    (Some(_), None) => false,
                }
        })
    }

    /// May the holder `verb` some (not necessarily every) `resource`? Lists are filtered then.
    pub fn allows_some(&self, resource: &str, verb: Verb) -> bool {
        self.rules.iter().any(|rule| matches(&rule.resources, resource) && matches(&rule.verbs, verb.as_str()))
    }

    /// May the holder perform `operation` on anything (a name-scoped operation: on every name)?
    pub fn allows_operation(&self, operation: Operation) -> bool {
        let scoped = operation.name_scoped();
        self.rules.iter().any(|rule| holds(rule, operation) && !(scoped && rule.names.is_some()))
    }

    /// May the holder perform `operation` on the resource named `name`? A rule's `names` limit
    /// the name-scoped operations (`run:infer`, `impersonate:users`) to those names; other
    /// operations ignore them.
    pub fn allows_operation_on(&self, operation: Operation, name: &str) -> bool {
        let scoped = operation.name_scoped();
        self.rules.iter().any(|rule| {
            holds(rule, operation)
                && (!scoped || rule.names.as_ref().is_none_or(|names| names.iter().any(|n| n == name)))
        })
    }

    /// May the holder send requests to the Llm `llm` through mcpd's inference endpoints?
    pub fn may_infer(&self, llm: &str) -> bool {
        self.allows_operation_on(Operation::Infer, llm)
    }

    /// May the holder use some Llms (which, [`Permissions::may_infer`] says)?
    pub fn may_infer_some(&self) -> bool {
        self.rules.iter().any(|rule| holds(rule, Operation::Infer))
    }

    /// Whether everything `role` grants is granted here too: nobody grants more than they hold.
    pub fn covers(&self, role: &RoleSpec) -> bool {
        role.rules.iter().all(|rule| {
            let resources: Vec<&str> = if rule.resources.iter().any(|r| r == "*") {
                RESOURCES.to_vec()
            } else {
                rule.resources.iter().map(String::as_str).collect()
            };
            // A verb or operation no release knows grants nothing, so it needs no cover.
            let verbs: Vec<Verb> = if rule.verbs.iter().any(|v| v == "*") {
                Verb::ALL.to_vec()
            } else {
                rule.verbs.iter().filter_map(|v| Verb::parse(v)).collect()
            };
            let crud = resources.iter().all(|resource| {
                verbs.iter().all(|verb| match &rule.names {
                    None => self.allows(resource, *verb, None) && !self.scoped(resource, *verb),
                    Some(names) => names.iter().all(|n| self.allows(resource, *verb, Some(n))),
                })
            });
            crud && rule.operations.iter().filter_map(|o| Operation::parse(o)).all(|o| match &rule.names {
                Some(names) if o.name_scoped() => names.iter().all(|n| self.allows_operation_on(o, n)),
                _ => self.allows_operation(o),
            })
        })
    }

    /// May the holder act as `user` (issue a token for them)? See [`Operation::ImpersonateUsers`].
    pub fn may_impersonate(&self, user: &str) -> bool {
        self.allows_operation_on(Operation::ImpersonateUsers, user)
    }

    /// Whether the holder may read the values of secret `name`: `reveal:secrets` and `view` on
    /// it by name. Directing a credential anywhere is allowed to exactly these holders.
    pub fn may_reveal(&self, secret: &str) -> bool {
        self.allows_operation(Operation::RevealSecrets) && self.allows("secrets", Verb::View, Some(secret))
    }

    /// Whether the holder may read every secret's values, present and future.
    pub fn may_reveal_all(&self) -> bool {
        self.allows_operation(Operation::RevealSecrets) && self.allows("secrets", Verb::View, None)
    }

    /// Whether the holder's grant of `verb` on `resource` is limited to names only.
    fn scoped(&self, resource: &str, verb: Verb) -> bool {
        !self.rules.iter().any(|rule| {
            matches(&rule.resources, resource) && matches(&rule.verbs, verb.as_str()) && rule.names.is_none()
        })
    }
}

/// Whether `rule` grants `operation` (on whatever names it scopes).
fn holds(rule: &Rule, operation: Operation) -> bool {
    rule.operations.iter().any(|o| o == operation.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::spec::tests::scoped;
    use crate::rbac::{ADMIN, EDITOR, Rule, VIEWER, built_in};

    #[test]
    fn name_scoped_rules_allow_those_names_only() {
        let p = Permissions::new([scoped()]);
        assert!(p.allows("llms", Verb::View, Some("claude-fast")));
        assert!(!p.allows("llms", Verb::View, Some("gpt-heavy")));
        assert!(!p.allows("llms", Verb::View, None), "not the whole collection");
        assert!(p.allows_some("llms", Verb::View), "but a filtered list");
        assert!(!p.allows("llms", Verb::Delete, Some("claude-fast")));
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

    #[test]
    fn impersonating_is_admins_unless_a_rule_grants_it_by_name() {
        let admin = Permissions::new(built_in(ADMIN));
        assert!(admin.may_impersonate("anyone"));
        for role in [EDITOR, VIEWER, crate::rbac::MONITORING] {
            assert!(!Permissions::new(built_in(role)).may_impersonate("anyone"), "{role}");
        }
        let one = RoleSpec {
            description: String::new(),
            rules: vec![Rule {
                operations: vec![crate::rbac::IMPERSONATE.into()],
                names: Some(vec!["ci-bot".into()]),
                ..Rule::default()
            }],
        };
        let ci = Permissions::new([one]);
        assert!(ci.may_impersonate("ci-bot") && !ci.may_impersonate("admin"));
    }

    #[test]
    fn inference_is_scoped_by_the_rule_names() {
        let admin = Permissions::new(built_in(ADMIN));
        let viewer = Permissions::new(built_in(VIEWER));
        let one = RoleSpec {
            description: String::new(),
            rules: vec![Rule {
                operations: vec!["run:infer".into(), "view:audit".into()],
                names: Some(vec!["claude-fast".into()]),
                ..Rule::default()
            }],
        };
        let fast_only = Permissions::new([one.clone()]);
        assert!(admin.may_infer("anything") && admin.allows_operation(Operation::Infer));
        assert!(!viewer.may_infer("claude-fast") && !viewer.may_infer_some());
        assert!(fast_only.may_infer("claude-fast") && !fast_only.may_infer("gpt-heavy"));
        assert!(fast_only.may_infer_some() && !fast_only.allows_operation(Operation::Infer), "not every Llm");
        assert!(fast_only.allows_operation(Operation::ViewAudit), "names scope run:infer only");
        assert!(!fast_only.may_impersonate("claude-fast"), "impersonating is granted by its own operation");
        assert!(fast_only.covers(&one) && admin.covers(&one));
        let mut every = one.clone();
        every.rules[0].names = None;
        assert!(!fast_only.covers(&every), "a grant on one Llm does not cover all of them");
        let mut other = one;
        other.rules[0].names = Some(vec!["gpt-heavy".into()]);
        assert!(!fast_only.covers(&other));
    }
}
