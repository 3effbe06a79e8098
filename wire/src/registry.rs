//! The registry of document types: which [`Spec`] type each [`Kind`]'s documents carry. The one
//! place a new kind's document type is named; a kind without one does not compile.

use crate::Kind;
use crate::document::Spec;
use crate::llm::LlmSpec;
use crate::migration::MigrationState;
use crate::rbac::{RoleBindingSpec, RoleSpec};
use crate::secret::SecretView;
use crate::secret_backend::BackendState;
use crate::user::{TokenState, UserState};

/// Something done with one kind's [`Spec`] type, whichever kind it is: [`Kind::visit`] calls
/// `visit` with the type of the kind's documents.
pub trait KindVisitor {
    type Output;
    fn visit<S: Spec>(self) -> Self::Output;
}

impl Kind {
    /// Calls `visitor` with this kind's document fields type. Matching every kind, it is the
    /// one place a new kind's type is named; a kind without one does not compile.
    pub fn visit<V: KindVisitor>(self, visitor: V) -> V::Output {
        match self {
            Kind::SecretBackend => visitor.visit::<BackendState>(),
            Kind::Secret => visitor.visit::<SecretView>(),
            Kind::Llm => visitor.visit::<LlmSpec>(),
            Kind::Migration => visitor.visit::<MigrationState>(),
            Kind::User => visitor.visit::<UserState>(),
            Kind::Token => visitor.visit::<TokenState>(),
            Kind::Role => visitor.visit::<RoleSpec>(),
            Kind::RoleBinding => visitor.visit::<RoleBindingSpec>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct KindOf;
    impl KindVisitor for KindOf {
        type Output = Kind;
        fn visit<S: Spec>(self) -> Kind {
            S::KIND
        }
    }

    #[test]
    fn every_kind_visits_the_type_of_its_own_documents() {
        for kind in Kind::ALL {
            assert_eq!(kind.visit(KindOf), kind);
        }
    }
}
