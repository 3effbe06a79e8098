//! What a rule grants, as types: the verbs on a resource's documents and the operations beside
//! them. Rules keep their wire spelling (`"view"`, `"run:infer"`, `"*"`), as roles are written;
//! every check asks with one of these, so a misspelt verb is a compile error, not a grant that
//! never matches.

wire::enumerated! {
    /// What may be done to a resource's documents.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Verb {
        View,
        Create,
        Edit,
        Delete,
    }
}

impl Verb {
    /// As roles spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::View => "view",
            Verb::Create => "create",
            Verb::Edit => "edit",
            Verb::Delete => "delete",
        }
    }

    pub fn parse(raw: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str() == raw)
    }
}

wire::enumerated! {
    /// What a rule may grant besides verbs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Operation {
        /// Sending requests to Llms through mcpd's inference endpoints (name-scoped: the Llms a
        /// rule names).
        Infer,
        MigrateSecrets,
        RebuildProjections,
        /// Reading secret values (with `view` on the secret by name).
        RevealSecrets,
        ViewAudit,
        ViewMetrics,
        /// Acting as another user: issuing a token for them. The token acts with whatever that
        /// user holds at each request, later grants included, so this is Kubernetes'
        /// `impersonate`, not a check of what the user holds today: admin's alone unless a role
        /// grants it (name-scoped: the users a rule names).
        ImpersonateUsers,
    }
}

impl Operation {
    /// As roles spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Infer => "run:infer",
            Operation::MigrateSecrets => "run:migrate-secrets",
            Operation::RebuildProjections => "run:rebuild-projections",
            Operation::RevealSecrets => "reveal:secrets",
            Operation::ViewAudit => "view:audit",
            Operation::ViewMetrics => "view:metrics",
            Operation::ImpersonateUsers => "impersonate:users",
        }
    }

    pub fn parse(raw: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.as_str() == raw)
    }

    /// Whether a rule's `names` scope this operation (to the Llms or users it names). Every
    /// other operation is granted whole by any rule holding it.
    pub const fn name_scoped(self) -> bool {
        match self {
            Operation::Infer | Operation::ImpersonateUsers => true,
            Operation::MigrateSecrets
            | Operation::RebuildProjections
            | Operation::RevealSecrets
            | Operation::ViewAudit
            | Operation::ViewMetrics => false,
        }
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The spellings of `ALL`, for schemas, validation and messages.
macro_rules! spellings {
    ($ty:ident) => {{
        let mut out = [""; $ty::ALL.len()];
        let mut i = 0;
        while i < out.len() {
            out[i] = $ty::ALL[i].as_str();
            i += 1;
        }
        out
    }};
}

pub const VERBS: [&str; Verb::ALL.len()] = spellings!(Verb);
pub const OPERATIONS: [&str; Operation::ALL.len()] = spellings!(Operation);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_back() {
        for verb in Verb::ALL {
            assert_eq!(Verb::parse(verb.as_str()), Some(verb));
        }
        for operation in Operation::ALL {
            assert_eq!(Operation::parse(operation.as_str()), Some(operation));
        }
        assert_eq!(Verb::parse("*"), None);
        assert_eq!(Operation::parse("run:everything"), None);
        assert_eq!(OPERATIONS.len(), 7);
    }
}
