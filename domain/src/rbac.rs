//! Authorisation: roles (rules over resources, verbs and names, and operations) and role
//! bindings (a role granted to users). Three roles are built in and cannot be changed; custom
//! roles and every binding are event-sourced resources. Evaluation is pure: the API gathers a
//! user's roles and asks [`Permissions`].

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::{Classified, ErrorClass};
use crate::name::ResourceName;
use crate::validation::ValidationErrors;

pub const ROLE_AGGREGATE_TYPE: &str = "role";
pub const BINDING_AGGREGATE_TYPE: &str = "rolebinding";

/// Every resource a rule may name: each kind's (from the kind registry), and `audit`.
pub const RESOURCES: [&str; 8] = wire::RBAC_RESOURCES;
pub const VERBS: [&str; 4] = ["view", "create", "edit", "delete"];
pub const OPERATIONS: [&str; 4] = ["run:migrate-secrets", "run:rebuild-projections", "reveal:secrets", "view:audit"];

pub const ADMIN: &str = "admin";
pub const EDITOR: &str = "editor";
pub const VIEWER: &str = "viewer";

/// One grant: `verbs` on `resources` (only the ones in `names`, when given), or `operations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verbs: Vec<String>,
    /// Only these resources by name; every one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
}

impl Rule {
    fn all(verbs: &[&str], resources: &[&str]) -> Rule {
        Rule {
            resources: resources.iter().map(|s| (*s).to_owned()).collect(),
            verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
            ..Rule::default()
        }
    }
}

/// A role's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RoleSpec {
    #[serde(default)]
    pub description: String,
    pub rules: Vec<Rule>,
}

/// A binding's content: `role` granted to `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleBindingSpec {
    #[serde(default)]
    pub description: String,
    pub role: String,
    pub users: Vec<String>,
}

/// The built-in role of that name, if it is one.
pub fn built_in(name: &str) -> Option<RoleSpec> {
    const CONTENT: [&str; 5] = ["llms", "secrets", "secretbackends", "users", "tokens"];
    let rules = match name {
        ADMIN => vec![
            Rule::all(&VERBS, &RESOURCES),
            Rule { operations: OPERATIONS.iter().map(|s| (*s).to_owned()).collect(), ..Rule::default() },
        ],
        // CRUD on the catalogue and on migrations' records; no RBAC, no secret values, and no
        // managing secret backends: whoever chooses where a backend sends its token and values
        // can read them (as Kubernetes' `edit` stops short of RBAC).
        EDITOR => vec![
            Rule::all(&VERBS, &["llms", "secrets"]),
            Rule::all(&["view"], &["secretbackends", "migrations"]),
            Rule { operations: vec!["run:migrate-secrets".into()], ..Rule::default() },
        ],
        VIEWER => vec![Rule::all(&["view"], &CONTENT[..3]), Rule::all(&["view"], &["migrations"])],
        _ => return None,
    };
    let description = match name {
        ADMIN => "everything",
        EDITOR => "create, edit and delete Llms and secrets; view backends; run migrations; no RBAC, no secret values",
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

#[derive(Debug, Clone, PartialEq)]
pub enum RoleCommand {
    Create {
        name: ResourceName,
        spec: RoleSpec,
    },
    Update {
        name: ResourceName,
        spec: RoleSpec,
        expected_version: Option<u64>,
    },
    /// `bound_by`: the bindings that grant this role (read from the read model).
    Delete {
        name: ResourceName,
        bound_by: Vec<String>,
        expected_version: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum RoleEvent {
    RoleCreated { spec: RoleSpec },
    RoleUpdated { spec: RoleSpec },
    RoleDeleted {},
}

#[derive(Debug, Clone, PartialEq)]
pub enum RoleBindingCommand {
    Create { name: ResourceName, spec: RoleBindingSpec },
    Update { name: ResourceName, spec: RoleBindingSpec, expected_version: Option<u64> },
    Delete { name: ResourceName, expected_version: Option<u64> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum RoleBindingEvent {
    RoleBindingCreated { spec: RoleBindingSpec },
    RoleBindingUpdated { spec: RoleBindingSpec },
    RoleBindingDeleted {},
}

impl DomainEvent for RoleEvent {
    fn event_type(&self) -> String {
        match self {
            RoleEvent::RoleCreated { .. } => "RoleCreated",
            RoleEvent::RoleUpdated { .. } => "RoleUpdated",
            RoleEvent::RoleDeleted { .. } => "RoleDeleted",
        }
        .to_owned()
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl DomainEvent for RoleBindingEvent {
    fn event_type(&self) -> String {
        match self {
            RoleBindingEvent::RoleBindingCreated { .. } => "RoleBindingCreated",
            RoleBindingEvent::RoleBindingUpdated { .. } => "RoleBindingUpdated",
            RoleBindingEvent::RoleBindingDeleted { .. } => "RoleBindingDeleted",
        }
        .to_owned()
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RbacError {
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name:?} is at resourceVersion {actual}, not {expected}")]
    Stale { kind: &'static str, name: String, expected: u64, actual: u64 },
    #[error("role {0:?} is built in and cannot be changed")]
    BuiltIn(String),
    #[error("role {role:?} is still bound by {bindings}")]
    InUse { role: String, bindings: String },
}

impl Classified for RbacError {
    fn class(&self) -> ErrorClass {
        match self {
            RbacError::NotFound { .. } => ErrorClass::NotFound,
            _ => ErrorClass::Conflict,
        }
    }
}

/// A role's write side: its version, whether it exists.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Role {
    version: u64,
    live: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RoleBinding {
    version: u64,
    live: bool,
}

fn check(
    kind: &'static str,
    name: &ResourceName,
    live: bool,
    version: u64,
    expected: Option<u64>,
) -> Result<(), RbacError> {
    if !live {
        return Err(RbacError::NotFound { kind, name: name.to_string() });
    }
    match expected {
        Some(expected) if expected != version => {
            Err(RbacError::Stale { kind, name: name.to_string(), expected, actual: version })
        }
        _ => Ok(()),
    }
}

impl Aggregate for Role {
    const TYPE: &'static str = ROLE_AGGREGATE_TYPE;
    type Command = RoleCommand;
    type Event = RoleEvent;
    type Error = RbacError;
    type Services = ();

    async fn handle(&mut self, command: RoleCommand, _: &(), sink: &EventSink<Self>) -> Result<(), RbacError> {
        let event = match command {
            RoleCommand::Create { name, spec } => {
                if built_in(name.as_str()).is_some() {
                    return Err(RbacError::BuiltIn(name.to_string()));
                }
                if self.live {
                    return Err(RbacError::AlreadyExists { kind: "role", name: name.to_string() });
                }
                RoleEvent::RoleCreated { spec }
            }
            RoleCommand::Update { name, spec, expected_version } => {
                check("role", &name, self.live, self.version, expected_version)?;
                RoleEvent::RoleUpdated { spec }
            }
            RoleCommand::Delete { name, bound_by, expected_version } => {
                check("role", &name, self.live, self.version, expected_version)?;
                if !bound_by.is_empty() {
                    return Err(RbacError::InUse {
                        role: name.to_string(),
                        bindings: crate::error::name_list(&bound_by),
                    });
                }
                RoleEvent::RoleDeleted {}
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: RoleEvent) {
        self.version += 1;
        self.live = !matches!(event, RoleEvent::RoleDeleted {});
    }
}

impl Aggregate for RoleBinding {
    const TYPE: &'static str = BINDING_AGGREGATE_TYPE;
    type Command = RoleBindingCommand;
    type Event = RoleBindingEvent;
    type Error = RbacError;
    type Services = ();

    async fn handle(&mut self, command: RoleBindingCommand, _: &(), sink: &EventSink<Self>) -> Result<(), RbacError> {
        let event = match command {
            RoleBindingCommand::Create { name, spec } => {
                if self.live {
                    return Err(RbacError::AlreadyExists { kind: "rolebinding", name: name.to_string() });
                }
                RoleBindingEvent::RoleBindingCreated { spec }
            }
            RoleBindingCommand::Update { name, spec, expected_version } => {
                check("rolebinding", &name, self.live, self.version, expected_version)?;
                RoleBindingEvent::RoleBindingUpdated { spec }
            }
            RoleBindingCommand::Delete { name, expected_version } => {
                check("rolebinding", &name, self.live, self.version, expected_version)?;
                RoleBindingEvent::RoleBindingDeleted {}
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: RoleBindingEvent) {
        self.version += 1;
        self.live = !matches!(event, RoleBindingEvent::RoleBindingDeleted {});
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn scoped() -> RoleSpec {
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
            for verb in VERBS {
                assert!(admin.allows(resource, verb, Some("x")), "admin {verb} {resource}");
            }
        }
        assert!(editor.allows("secrets", "delete", Some("x")) && !editor.allows("rbac", "view", None));
        assert!(editor.allows("secretbackends", "view", None) && !editor.allows("secretbackends", "edit", Some("x")));
        assert!(!editor.allows_operation("reveal:secrets") && editor.allows_operation("run:migrate-secrets"));
        assert!(viewer.allows("llms", "view", None) && !viewer.allows("llms", "edit", Some("x")));
        assert!(!viewer.allows("users", "view", None) && !viewer.allows_operation("reveal:secrets"));
    }

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

    #[test]
    fn built_in_roles_cannot_be_created_and_bound_roles_cannot_go() {
        let name = ResourceName::parse("admin").unwrap();
        TestFramework::<Role>::with(())
            .given_no_previous_events()
            .when(RoleCommand::Create { name, spec: scoped() })
            .then_expect_error(RbacError::BuiltIn("admin".into()));
        let name = ResourceName::parse("llm-editor").unwrap();
        TestFramework::<Role>::with(())
            .given(vec![RoleEvent::RoleCreated { spec: scoped() }])
            .when(RoleCommand::Delete { name, bound_by: vec!["alice-llms".into()], expected_version: None })
            .then_expect_error(RbacError::InUse { role: "llm-editor".into(), bindings: "\"alice-llms\"".into() });
    }
}
