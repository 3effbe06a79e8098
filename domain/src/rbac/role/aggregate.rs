use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{RoleCommand, RoleEvent};
use crate::rbac::error::{RbacError, check};
use crate::rbac::{ROLE_AGGREGATE_TYPE, built_in};

/// A role's write side: its version, whether it exists.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Role {
    version: u64,
    live: bool,
    /// The current content: an update that changes nothing records nothing.
    spec: Option<crate::rbac::RoleSpec>,
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
                match &self.spec {
                    Some(old) if *old == spec => return Ok(()),
                    // A rule changed counts as one taken away: whether the new one covers the
                    // old is not worked out, so the update holds at once, as a narrowing does.
                    Some(old) if old.rules.iter().any(|r| !spec.rules.contains(r)) => RoleEvent::RoleNarrowed { spec },
                    _ => RoleEvent::RoleUpdated { spec },
                }
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
        self.spec = match event {
            RoleEvent::RoleCreated { spec } | RoleEvent::RoleUpdated { spec } | RoleEvent::RoleNarrowed { spec } => {
                Some(spec)
            }
            RoleEvent::RoleDeleted {} => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::name::ResourceName;
    use crate::rbac::spec::tests::scoped;
    use crate::rbac::{RoleSpec, Rule};

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

    #[test]
    fn an_unchanged_update_records_nothing_and_a_stale_one_is_refused() {
        let name = ResourceName::parse("llm-editor").unwrap();
        TestFramework::<Role>::with(())
            .given(vec![RoleEvent::RoleCreated { spec: scoped() }])
            .when(RoleCommand::Update { name: name.clone(), spec: scoped(), expected_version: Some(1) })
            .then_expect_events(vec![]);
        TestFramework::<Role>::with(())
            .given(vec![RoleEvent::RoleCreated { spec: scoped() }])
            .when(RoleCommand::Update { name, spec: scoped(), expected_version: Some(3) })
            .then_expect_error(RbacError::Stale { kind: "role", name: "llm-editor".into(), expected: 3, actual: 1 });
    }

    type Given = TestFramework<Role>;

    fn rule(resource: &str, verbs: &[&str]) -> Rule {
        Rule {
            resources: vec![resource.into()],
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..Rule::default()
        }
    }

    fn spec(rules: Vec<Rule>) -> RoleSpec {
        RoleSpec { description: String::new(), rules }
    }

    fn update(rules: Vec<Rule>) -> RoleCommand {
        RoleCommand::Update { name: ResourceName::parse("r").unwrap(), spec: spec(rules), expected_version: None }
    }

    fn created() -> RoleEvent {
        RoleEvent::RoleCreated { spec: spec(vec![rule("llms", &["view"])]) }
    }

    #[test]
    fn a_rule_added_is_an_update_and_a_rule_changed_or_removed_a_narrowing() {
        let wider = vec![rule("llms", &["view"]), rule("secrets", &["view"])];
        Given::with(())
            .given(vec![created()])
            .when(update(wider.clone()))
            .then_expect_events(vec![RoleEvent::RoleUpdated { spec: spec(wider) }]);
        let changed = vec![rule("llms", &["view", "edit"])];
        Given::with(())
            .given(vec![created()])
            .when(update(changed.clone()))
            .then_expect_events(vec![RoleEvent::RoleNarrowed { spec: spec(changed) }]);
        Given::with(())
            .given(vec![created()])
            .when(update(vec![]))
            .then_expect_events(vec![RoleEvent::RoleNarrowed { spec: spec(vec![]) }]);
    }
}
