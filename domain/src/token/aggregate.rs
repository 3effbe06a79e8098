use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{AGGREGATE_TYPE, TokenCommand, TokenEvent};
use crate::error::{Classified, ErrorClass};
use crate::name::ResourceName;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token {0:?} already exists")]
    AlreadyExists(String),
    #[error("token {0:?} not found")]
    NotFound(String),
    #[error("user {0:?} not found")]
    NoSuchUser(ResourceName),
}

impl Classified for TokenError {
    fn class(&self) -> ErrorClass {
        match self {
            TokenError::AlreadyExists(_) => ErrorClass::Conflict,
            TokenError::NotFound(_) => ErrorClass::NotFound,
            TokenError::NoSuchUser(_) => ErrorClass::Unresolved,
        }
    }

    fn field(&self) -> Option<&'static str> {
        matches!(self, TokenError::NoSuchUser(_)).then_some("user")
    }
}

#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
enum State {
    #[default]
    New,
    Live,
    Revoked,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Token {
    state: State,
}

impl Aggregate for Token {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = TokenCommand;
    type Event = TokenEvent;
    type Error = TokenError;
    type Services = ();

    async fn handle(&mut self, command: TokenCommand, _: &(), sink: &EventSink<Self>) -> Result<(), TokenError> {
        let event = match command {
            TokenCommand::IssueToken { id, user, user_exists, hash, expires_at, description } => {
                if self.state != State::New {
                    return Err(TokenError::AlreadyExists(id));
                }
                if !user_exists {
                    return Err(TokenError::NoSuchUser(user));
                }
                TokenEvent::TokenIssued { user, hash, expires_at, description }
            }
            TokenCommand::RevokeToken { id } => {
                if self.state != State::Live {
                    return Err(TokenError::NotFound(id));
                }
                TokenEvent::TokenRevoked {}
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: TokenEvent) {
        self.state = match event {
            TokenEvent::TokenIssued { .. } => State::Live,
            TokenEvent::TokenRevoked {} => State::Revoked,
        };
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn issue(user_exists: bool) -> TokenCommand {
        TokenCommand::IssueToken {
            id: "t1".into(),
            user: ResourceName::parse("alice").unwrap(),
            user_exists,
            hash: "ab".into(),
            expires_at: None,
            description: "ci".into(),
        }
    }

    fn issued() -> TokenEvent {
        TokenEvent::TokenIssued {
            user: ResourceName::parse("alice").unwrap(),
            hash: "ab".into(),
            expires_at: None,
            description: "ci".into(),
        }
    }

    #[test]
    fn a_token_is_issued_to_an_existing_user_only() {
        TestFramework::<Token>::with(())
            .given_no_previous_events()
            .when(issue(true))
            .then_expect_events(vec![issued()]);
        TestFramework::<Token>::with(())
            .given_no_previous_events()
            .when(issue(false))
            .then_expect_error(TokenError::NoSuchUser(ResourceName::parse("alice").unwrap()));
    }

    #[test]
    fn revoking_is_final() {
        TestFramework::<Token>::with(())
            .given(vec![issued()])
            .when(TokenCommand::RevokeToken { id: "t1".into() })
            .then_expect_events(vec![TokenEvent::TokenRevoked {}]);
        TestFramework::<Token>::with(())
            .given(vec![issued(), TokenEvent::TokenRevoked {}])
            .when(TokenCommand::RevokeToken { id: "t1".into() })
            .then_expect_error(TokenError::NotFound("t1".into()));
        TestFramework::<Token>::with(())
            .given(vec![issued(), TokenEvent::TokenRevoked {}])
            .when(issue(true))
            .then_expect_error(TokenError::AlreadyExists("t1".into()));
    }
}
