//! The registry of resource kinds: every kind mcpd serves is described here once, and
//! everything that enumerates kinds (RBAC resources, the audit kind filter, history, schemas,
//! the CLI's kinds and completions, document parsing) is derived from [`Kind::ALL`] (declared
//! with the enum by [`crate::enumerated!`], so no kind can be missing from it) and
//! [`Kind::info`]. `info` matches every variant, so a new kind without its description does not
//! compile, and neither does one without its document type ([`Kind::visit`], in `registry.rs`;
//! each kind's module carries the columns `get` prints); `registry_is_consistent` below checks what the
//! compiler cannot.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

crate::enumerated! {
    /// A resource kind mcpd serves, in dependency order: what a document of a later kind may
    /// refer to comes earlier (backends before the secrets on them, secrets before the Llms
    /// using them, roles before the bindings naming them). `Kind::ALL` lists them in this order.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Kind {
        SecretBackend,
        Secret,
        Llm,
        Migration,
        User,
        Token,
        Role,
        RoleBinding,
    }
}

/// One kind's description.
#[derive(Debug)]
pub struct KindInfo {
    /// The name documents and messages use (`kind: llm`).
    pub singular: &'static str,
    /// The collection's name, as in `/api/v1/{plural}`.
    pub plural: &'static str,
    /// kubectl-style short names (`sb`, `rb`).
    pub short: &'static [&'static str],
    /// The resource RBAC rules name for it.
    pub rbac_resource: &'static str,
    /// Its stream's aggregate type in the event log.
    pub aggregate_type: &'static str,
    /// Fields the server owns: shown by `get`, accepted and ignored on input.
    pub read_only: &'static [&'static str],
    /// Whether `apply -f` and `diff -f` take documents of this kind.
    pub applicable: bool,
    /// Whether `mcpctl get all` lists it (the catalogue, which `get all -o yaml` backs up).
    pub in_all: bool,
    /// One line saying what it is, for `--help`.
    pub help: &'static str,
}

/// The read-only fields every resource document carries.
const COMMON_READ_ONLY: &[&str] = &["resourceVersion", "createdAt", "updatedAt"];

impl Kind {
    pub const fn info(self) -> &'static KindInfo {
        match self {
            Kind::SecretBackend => {
                const INFO: KindInfo = KindInfo {
                    singular: "secretbackend",
                    plural: "secretbackends",
                    short: &["sb"],
                    rbac_resource: "secretbackends",
                    aggregate_type: "secretbackend",
                    read_only: COMMON_READ_ONLY,
                    applicable: true,
                    in_all: true,
                    help: "Secret backends: where secret values are stored (plaintext, openbao).",
                };
                &INFO
            }
            Kind::Secret => {
                const INFO: KindInfo = KindInfo {
                    singular: "secret",
                    plural: "secrets",
                    short: &[],
                    rbac_resource: "secrets",
                    aggregate_type: "secret",
                    read_only: &[
                        "resourceVersion",
                        "createdAt",
                        "updatedAt",
                        "keys",
                        "dataVersion",
                        "externalRef",
                        "revealError",
                    ],
                    applicable: true,
                    in_all: true,
                    help: "Secrets: named keys and their values, on a backend.",
                };
                &INFO
            }
            Kind::Llm => {
                const INFO: KindInfo = KindInfo {
                    singular: "llm",
                    plural: "llms",
                    short: &[],
                    rbac_resource: "llms",
                    aggregate_type: "llm",
                    read_only: &["resourceVersion", "createdAt", "updatedAt", "health"],
                    applicable: true,
                    in_all: true,
                    help: "Llms: a provider, model and tier, and the secret key they authenticate with.",
                };
                &INFO
            }
            Kind::Migration => {
                const INFO: KindInfo = KindInfo {
                    singular: "migration",
                    plural: "migrations",
                    short: &[],
                    rbac_resource: "migrations",
                    aggregate_type: "migration",
                    read_only: COMMON_READ_ONLY,
                    applicable: false,
                    in_all: false,
                    help: "Secret migration runs (`get` and `describe` only).",
                };
                &INFO
            }
            Kind::User => {
                const INFO: KindInfo = KindInfo {
                    singular: "user",
                    plural: "users",
                    short: &[],
                    rbac_resource: "users",
                    aggregate_type: "user",
                    read_only: COMMON_READ_ONLY,
                    applicable: false,
                    in_all: false,
                    help: "Users: who tokens authenticate.",
                };
                &INFO
            }
            Kind::Token => {
                const INFO: KindInfo = KindInfo {
                    singular: "token",
                    plural: "tokens",
                    short: &[],
                    rbac_resource: "tokens",
                    aggregate_type: "token",
                    read_only: COMMON_READ_ONLY,
                    applicable: false,
                    in_all: false,
                    help: "API tokens, by id (`get`, `describe`, `delete` revokes).",
                };
                &INFO
            }
            Kind::Role => {
                const INFO: KindInfo = KindInfo {
                    singular: "role",
                    plural: "roles",
                    short: &[],
                    rbac_resource: "rbac",
                    aggregate_type: "role",
                    read_only: &["resourceVersion", "createdAt", "updatedAt", "builtIn"],
                    applicable: true,
                    in_all: false,
                    help: "Roles: the built-in admin, editor and viewer, and custom ones.",
                };
                &INFO
            }
            Kind::RoleBinding => {
                const INFO: KindInfo = KindInfo {
                    singular: "rolebinding",
                    plural: "rolebindings",
                    short: &["rb"],
                    rbac_resource: "rbac",
                    aggregate_type: "rolebinding",
                    read_only: COMMON_READ_ONLY,
                    applicable: true,
                    in_all: false,
                    help: "Role bindings: a role granted to users.",
                };
                &INFO
            }
        }
    }

    /// The singular name.
    pub fn as_str(self) -> &'static str {
        self.info().singular
    }

    /// A kind as a user or a document names it: singular, plural or short name, any case.
    pub fn parse(raw: &str) -> Option<Kind> {
        let raw = raw.to_ascii_lowercase();
        Kind::ALL.into_iter().find(|kind| {
            let info = kind.info();
            raw == info.singular || raw == info.plural || info.short.contains(&raw.as_str())
        })
    }

    /// `kind:` as a document spells it: singular or plural, any case (short names are for the
    /// command line only).
    pub fn parse_document(raw: &str) -> Option<Kind> {
        let raw = raw.to_ascii_lowercase();
        Kind::ALL.into_iter().find(|kind| raw == kind.info().singular || raw == kind.info().plural)
    }

    /// The kind whose stream has this aggregate type.
    pub fn of_aggregate(aggregate_type: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.info().aggregate_type == aggregate_type)
    }

    /// The collection's path in the API.
    pub fn path(self) -> String {
        format!("/api/v1/{}", self.info().plural)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every resource an RBAC rule may name: each kind's, then `audit` (the log, which is no kind).
pub const RBAC_RESOURCES: [&str; 8] =
    ["llms", "secrets", "secretbackends", "users", "tokens", "rbac", "migrations", "audit"];

/// A kind on the wire: its singular name.
impl schemars::JsonSchema for Kind {
    fn schema_name() -> Cow<'static, str> {
        "Kind".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.info().singular).collect();
        schemars::json_schema!({"type": "string", "enum": names, "description": "The resource's kind."})
    }
}

impl Serialize for Kind {
    fn serialize<Se: serde::Serializer>(&self, serializer: Se) -> Result<Se::Ok, Se::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Kind, D::Error> {
        let raw = Cow::<'de, str>::deserialize(deserializer)?;
        Kind::parse_document(&raw).ok_or_else(|| serde::de::Error::custom(format!("unknown kind {raw:?}")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn registry_is_consistent() {
        let mut names = BTreeSet::new();
        for kind in Kind::ALL {
            let info = kind.info();
            for name in [info.singular, info.plural].iter().chain(info.short) {
                assert!(names.insert(*name), "{name:?} names two kinds");
                assert_eq!(Kind::parse(name), Some(kind));
                assert_eq!(Kind::parse(&name.to_ascii_uppercase()), Some(kind));
            }
            assert_eq!(Kind::of_aggregate(info.aggregate_type), Some(kind));
            assert!(RBAC_RESOURCES.contains(&info.rbac_resource), "{kind}'s RBAC resource is not listed");
            assert!(info.read_only.starts_with(COMMON_READ_ONLY), "{kind}");
        }
        // Every listed RBAC resource belongs to a kind, but `audit`.
        for resource in RBAC_RESOURCES.iter().filter(|r| **r != "audit") {
            assert!(Kind::ALL.iter().any(|k| k.info().rbac_resource == *resource), "{resource} has no kind");
        }
        let mut sorted = Kind::ALL;
        sorted.sort();
        assert_eq!(sorted, Kind::ALL, "ALL lists the kinds in declaration (dependency) order");
        assert_eq!(Kind::parse("nope"), None);
        assert_eq!(Kind::parse_document("SecretBackends"), Some(Kind::SecretBackend));
        assert_eq!(Kind::parse_document("sb"), None, "short names are for the command line");
    }

    #[test]
    fn kinds_travel_as_their_singular_name() {
        assert_eq!(serde_json::to_value(Kind::RoleBinding).unwrap(), "rolebinding");
        assert_eq!(serde_json::from_value::<Kind>("SecretBackends".into()).unwrap(), Kind::SecretBackend);
        let err = serde_json::from_value::<Kind>("widget".into()).unwrap_err();
        assert_eq!(err.to_string(), "unknown kind \"widget\"");
    }
}
