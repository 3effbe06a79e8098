//! What roles and bindings hold, the three built-in roles, and the check of a role's rules.

pub use wire::rbac::{RoleBindingSpec, RoleSpec, Rule};

use super::{ADMIN, EDITOR, MONITORING, OPERATIONS, Operation, RESOURCES, VERBS, VIEWER, Verb};
use crate::name::ResourceName;
use crate::validation::ValidationErrors;

/// A rule granting `verbs` on every resource of `resources`.
fn rule(verbs: &[&str], resources: &[&str]) -> Rule {
    Rule {
        resources: resources.iter().map(|s| (*s).to_owned()).collect(),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..Rule::default()
    }
}

/// Operations as a rule lists them.
fn grants(operations: &[Operation]) -> Vec<String> {
    operations.iter().map(|o| o.as_str().to_owned()).collect()
}

/// The built-in role of that name, if it is one.
pub fn built_in(name: &str) -> Option<RoleSpec> {
    const CONTENT: [&str; 5] = ["llms", "secrets", "secretbackends", "users", "tokens"];
    let rules = match name {
        ADMIN => vec![rule(&VERBS, &RESOURCES), Rule { operations: grants(&Operation::ALL), ..Rule::default() }],
        // CRUD on the catalogue and on migrations' records; no RBAC, no secret values, and no
        // managing secret backends: whoever chooses where a backend sends its token and values
        // can read them (as Kubernetes' `edit` stops short of RBAC).
        EDITOR => vec![
            rule(&VERBS, &["llms", "secrets"]),
            rule(&[Verb::View.as_str()], &["secretbackends", "migrations"]),
            Rule { operations: grants(&[Operation::Infer, Operation::MigrateSecrets]), ..Rule::default() },
        ],
        VIEWER => vec![rule(&[Verb::View.as_str()], &CONTENT[..3]), rule(&[Verb::View.as_str()], &["migrations"])],
        MONITORING => vec![Rule { operations: grants(&[Operation::ViewMetrics]), ..Rule::default() }],
        _ => return None,
    };
    let description = match name {
        ADMIN => "everything",
        EDITOR => {
            "create, edit and delete Llms and secrets; use every Llm; view backends; run migrations; no RBAC, \
             no secret values"
        }
        MONITORING => "scrape /metrics, nothing else",
        _ => "view Llms, secrets (never their values), backends and migrations",
    };
    Some(RoleSpec { description: description.into(), rules })
}

/// Checks a role's rules: known resources, verbs and operations; every failing one is listed.
pub fn validate_rules(rules: &[Rule], errors: &mut ValidationErrors) {
    if rules.is_empty() {
        errors.add("rules", "must hold at least one rule");
    }
    for (i, rule) in rules.iter().enumerate() {
        let field = |f: &str| format!("rules[{i}].{f}");
        for resource in &rule.resources {
            if !RESOURCES.contains(&resource.as_str()) && resource != "*" {
                errors
                    .add(field("resources"), format!("unknown resource {resource:?}; one of {}", RESOURCES.join(", ")));
            }
        }
        for verb in &rule.verbs {
            if !VERBS.contains(&verb.as_str()) && verb != "*" {
                errors.add(field("verbs"), format!("unknown verb {verb:?}; one of {}", VERBS.join(", ")));
            }
        }
        for operation in &rule.operations {
            if !OPERATIONS.contains(&operation.as_str()) {
                errors.add(
                    field("operations"),
                    format!("unknown operation {operation:?}; one of {}", OPERATIONS.join(", ")),
                );
            }
        }
        for name in rule.names.iter().flatten() {
            if ResourceName::parse(name).is_err() {
                errors.add(field("names"), format!("{name:?} is not a resource name"));
            }
        }
        if rule.resources.is_empty() != rule.verbs.is_empty() {
            errors.add(field("verbs"), "resources and verbs go together");
        }
        if rule.resources.is_empty() && rule.operations.is_empty() {
            errors.add(field("resources"), "a rule grants verbs on resources, or operations");
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::rbac::Permissions;

    pub(crate) fn scoped() -> RoleSpec {
        RoleSpec {
            description: String::new(),
            rules: vec![Rule {
                resources: vec!["llms".into()],
                verbs: vec!["view".into(), "edit".into()],
                names: Some(vec!["claude-fast".into()]),
                operations: vec![],
            }],
        }
    }

    #[test]
    fn built_in_roles_grant_what_they_say() {
        let admin = Permissions::new(built_in(ADMIN));
        let editor = Permissions::new(built_in(EDITOR));
        let viewer = Permissions::new(built_in(VIEWER));
        for resource in RESOURCES {
            for verb in Verb::ALL {
                assert!(admin.allows(resource, verb, Some("x")), "admin {verb} {resource}");
            }
        }
        assert!(editor.allows("secrets", Verb::Delete, Some("x")) && !editor.allows("rbac", Verb::View, None));
        assert!(
            editor.allows("secretbackends", Verb::View, None)
                && !editor.allows("secretbackends", Verb::Edit, Some("x"))
        );
        assert!(
            !editor.allows_operation(Operation::RevealSecrets) && editor.allows_operation(Operation::MigrateSecrets)
        );
        assert!(viewer.allows("llms", Verb::View, None) && !viewer.allows("llms", Verb::Edit, Some("x")));
        assert!(!viewer.allows("users", Verb::View, None) && !viewer.allows_operation(Operation::RevealSecrets));
        let monitoring = Permissions::new(built_in(MONITORING));
        assert!(monitoring.allows_operation(Operation::ViewMetrics) && admin.allows_operation(Operation::ViewMetrics));
        assert!(!editor.allows_operation(Operation::ViewMetrics) && !viewer.allows_operation(Operation::ViewMetrics));
        for resource in RESOURCES {
            assert!(!monitoring.allows_some(resource, Verb::View), "monitoring sees no {resource}");
        }
        for operation in Operation::ALL.into_iter().filter(|o| *o != Operation::ViewMetrics) {
            assert!(!monitoring.allows_operation(operation), "monitoring may not {operation}");
        }
    }

    #[test]
    fn rules_are_validated_field_by_field() {
        let mut errors = ValidationErrors::default();
        let rules = vec![
            Rule { resources: vec!["llm".into()], verbs: vec!["read".into()], ..Rule::default() },
            Rule { operations: vec!["run:everything".into()], ..Rule::default() },
            Rule::default(),
        ];
        validate_rules(&rules, &mut errors);
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.clone()).collect();
        assert_eq!(fields, ["rules[0].resources", "rules[0].verbs", "rules[1].operations", "rules[2].resources"]);
    }
}
