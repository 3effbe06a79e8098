//! How a domain error is classified, so the API can map every aggregate's errors onto one set of
//! HTTP statuses without knowing each rule.

/// The class of a rejected command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request itself is wrong: a field.
    Invalid,
    /// The request is well-formed but names a resource that does not exist (yet): a Secret an
    /// Llm's key is in, a user a token is for. 409, like any clash with the current state,
    /// with the field at fault.
    Unresolved,
    /// The resource the command addresses does not exist.
    NotFound,
    /// The request is well-formed but clashes with the current state.
    Conflict,
}

/// Implemented by every aggregate error.
pub trait Classified {
    fn class(&self) -> ErrorClass;
    /// The document field at fault, for `Invalid` errors that concern one field.
    fn field(&self) -> Option<&'static str> {
        None
    }
}

/// Lists names for a conflict message, bounded so a message stays readable.
pub fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut out = names.iter().take(SHOWN).map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    out
}

/// Lists already-formatted referrers (`llm "x"`), bounded like [`name_list`].
pub fn user_list(users: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut out = users.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if users.len() > SHOWN {
        out.push_str(&format!(" and {} more", users.len() - SHOWN));
    }
    out
}
