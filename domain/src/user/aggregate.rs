use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{AGGREGATE_TYPE, UserCommand, UserEvent};
use crate::error::{Classified, ErrorClass};
use crate::name::ResourceName;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("user {0:?} already exists")]
    AlreadyExists(ResourceName),
    #[error("user {0:?} not found")]
    NotFound(ResourceName),
}

impl Classified for UserError {
    fn class(&self) -> ErrorClass {
        match self {
            UserError::AlreadyExists(_) => ErrorClass::Conflict,
            UserError::NotFound(_) => ErrorClass::NotFound,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct User {
    live: bool,
}

impl Aggregate for User {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(&mut self, command: UserCommand, _: &(), sink: &EventSink<Self>) -> Result<(), UserError> {
        let event = match command {
            UserCommand::CreateUser { name, description } => {
                if self.live {
                    return Err(UserError::AlreadyExists(name));
                }
                UserEvent::UserCreated { description }
            }
            UserCommand::DeleteUser { name } => {
                if !self.live {
                    return Err(UserError::NotFound(name));
                }
                UserEvent::UserDeleted {}
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: UserEvent) {
        self.live = matches!(event, UserEvent::UserCreated { .. });
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn alice() -> ResourceName {
        ResourceName::parse("alice").unwrap()
    }

    #[test]
    fn a_user_is_created_once_and_can_come_back_after_a_delete() {
        TestFramework::<User>::with(())
            .given_no_previous_events()
            .when(UserCommand::CreateUser { name: alice(), description: "SRE".into() })
            .then_expect_events(vec![UserEvent::UserCreated { description: "SRE".into() }]);
        TestFramework::<User>::with(())
            .given(vec![UserEvent::UserCreated { description: String::new() }])
            .when(UserCommand::CreateUser { name: alice(), description: String::new() })
            .then_expect_error(UserError::AlreadyExists(alice()));
        TestFramework::<User>::with(())
            .given(vec![UserEvent::UserCreated { description: String::new() }, UserEvent::UserDeleted {}])
            .when(UserCommand::CreateUser { name: alice(), description: String::new() })
            .then_expect_events(vec![UserEvent::UserCreated { description: String::new() }]);
    }

    #[test]
    fn deleting_a_missing_user_is_not_found() {
        TestFramework::<User>::with(())
            .given_no_previous_events()
            .when(UserCommand::DeleteUser { name: alice() })
            .then_expect_error(UserError::NotFound(alice()));
    }
}
