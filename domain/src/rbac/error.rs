//! The rules roles and bindings enforce, as one error type, and the shared version check.

use crate::error::{Classified, ErrorClass};
use crate::name::ResourceName;

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

pub(super) fn check(
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
