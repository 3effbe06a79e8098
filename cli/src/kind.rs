//! What the CLI knows about each kind, all of it from the kind registry (`wire::Kind`): its
//! names and aliases on the command line, its API path, its name in documents and its place in
//! dependency order. `Kind::All` stands for the catalogue.

use std::sync::LazyLock;

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::args::Kind;

impl From<wire::Kind> for Kind {
    fn from(kind: wire::Kind) -> Kind {
        match kind {
            wire::Kind::Llm => Kind::Llm,
            wire::Kind::Secret => Kind::Secret,
            wire::Kind::SecretBackend => Kind::SecretBackend,
            wire::Kind::Migration => Kind::Migration,
            wire::Kind::User => Kind::User,
            wire::Kind::Token => Kind::Token,
            wire::Kind::Role => Kind::Role,
            wire::Kind::RoleBinding => Kind::RoleBinding,
        }
    }
}

/// `all`, then every kind of the registry, in its order.
static VARIANTS: LazyLock<Vec<Kind>> =
    LazyLock::new(|| std::iter::once(Kind::All).chain(wire::Kind::ALL.map(Kind::from)).collect());

impl ValueEnum for Kind {
    fn value_variants<'a>() -> &'a [Self] {
        &VARIANTS
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self.wire() {
            None => PossibleValue::new("all").help("Every kind of the catalogue, in dependency order (`get` only)"),
            Some(kind) => {
                let info = kind.info();
                PossibleValue::new(info.singular)
                    .aliases(std::iter::once(info.plural).chain(info.short.iter().copied()))
                    .help(info.help)
            }
        })
    }
}

impl Kind {
    /// The registry's kind; `None` for `all`.
    pub fn wire(self) -> Option<wire::Kind> {
        match self {
            Kind::All => None,
            Kind::Llm => Some(wire::Kind::Llm),
            Kind::Secret => Some(wire::Kind::Secret),
            Kind::SecretBackend => Some(wire::Kind::SecretBackend),
            Kind::Migration => Some(wire::Kind::Migration),
            Kind::User => Some(wire::Kind::User),
            Kind::Token => Some(wire::Kind::Token),
            Kind::Role => Some(wire::Kind::Role),
            Kind::RoleBinding => Some(wire::Kind::RoleBinding),
        }
    }

    pub fn singular(self) -> &'static str {
        self.wire().map_or("all", |k| k.info().singular)
    }

    /// The concrete kinds `self` stands for, in dependency order.
    pub fn expand(self) -> Vec<Kind> {
        match self.wire() {
            None => wire::Kind::ALL.into_iter().filter(|k| k.info().in_all).map(Kind::from).collect(),
            Some(_) => vec![self],
        }
    }

    /// The collection's path in the API.
    pub fn path(self) -> String {
        self.wire().map_or_else(|| "/api/v1/all".to_owned(), wire::Kind::path)
    }

    /// `kind:` as documents may spell it (singular or plural, any case), for the kinds
    /// `apply -f` takes.
    pub fn from_document(raw: &str) -> Option<Kind> {
        wire::Kind::parse_document(raw).filter(|k| k.info().applicable).map(Kind::from)
    }

    /// The registry's dependency order: backends before the secrets on them, secrets before
    /// the Llms that use them, roles before the bindings naming them.
    pub fn dependency_rank(self) -> u8 {
        self.wire().map_or(u8::MAX, |k| k as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registry_kind_is_a_cli_kind_with_its_names() {
        for kind in wire::Kind::ALL {
            let cli = Kind::from(kind);
            assert_eq!(cli.wire(), Some(kind));
            let info = kind.info();
            for name in std::iter::once(info.singular).chain([info.plural]).chain(info.short.iter().copied()) {
                assert_eq!(Kind::from_str(name, true), Ok(cli), "{name}");
            }
        }
        assert_eq!(Kind::from_str("all", true), Ok(Kind::All));
        assert_eq!(Kind::All.expand(), [Kind::SecretBackend, Kind::Secret, Kind::Llm]);
        assert_eq!(Kind::from_document("RoleBindings"), Some(Kind::RoleBinding));
        assert_eq!(Kind::from_document("user"), None, "users are not applied from documents");
    }

    /// How a kind's resources come to be, from mcpctl: every kind is named (a new one does not
    /// compile until it is), and the subcommand it names exists.
    fn made_by(kind: wire::Kind) -> &'static [&'static str] {
        match kind {
            wire::Kind::SecretBackend => &["create", "secretbackend"],
            wire::Kind::Secret => &["create", "secret"],
            wire::Kind::Llm => &["create", "llm"],
            wire::Kind::Role => &["create", "role"],
            wire::Kind::RoleBinding => &["create", "rolebinding"],
            wire::Kind::User => &["create", "user"],
            wire::Kind::Token => &["create", "token"],
            // A run is started by the command that runs it.
            wire::Kind::Migration => &["migrate", "secrets"],
        }
    }

    #[test]
    fn every_kind_has_the_subcommand_that_makes_it() {
        use clap::CommandFactory;
        let cli = crate::args::Cli::command();
        for kind in wire::Kind::ALL {
            let mut command = &cli;
            for word in made_by(kind) {
                command = command
                    .find_subcommand(word)
                    .unwrap_or_else(|| panic!("{kind:?}: mcpctl has no {:?}", made_by(kind).join(" ")));
            }
            // A create subcommand's aliases are the kind's other names.
            if made_by(kind)[0] == "create" {
                let info = kind.info();
                let names: Vec<&str> = std::iter::once(command.get_name()).chain(command.get_all_aliases()).collect();
                assert!(
                    names.contains(&info.plural),
                    "{kind:?}: mcpctl create {} takes {}",
                    info.singular,
                    info.plural
                );
            }
        }
    }
}
