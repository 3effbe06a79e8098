//! The documents mcpd sends and mcpctl reads: one envelope ([`Document`]) around each kind's
//! fields ([`Spec`]), and what a person is shown of them ([`Column`], [`Cell`]). mcpd
//! serialises exactly these types and mcpctl deserialises them, so a field renamed on one side
//! is renamed on the other, and a column naming a field that does not exist does not compile.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Kind;
use crate::llm::{LlmSpec, SecretKeyRef};
use crate::migration::MigrationState;
use crate::rbac::{RoleBindingSpec, RoleSpec, Rule};
use crate::secret::SecretView;
use crate::secret_backend::BackendState;
use crate::user::{TokenState, UserState};

/// One resource on the wire: `kind`, `name`, the kind's fields, then the read-only fields the
/// server owns. mcpd serialises `Document<&S>`; mcpctl deserialises `Document<S>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "{S}Document")]
pub struct Document<S> {
    pub kind: Kind,
    /// The resource's name (a token's id).
    pub name: String,
    #[serde(flatten)]
    pub spec: S,
    /// The resource's version: its number of changes, for If-Match.
    pub resource_version: i64,
    /// When it was created (RFC 3339); empty for the built-in roles, which no event created.
    #[serde(default)]
    pub created_at: String,
    /// When it last changed (RFC 3339).
    #[serde(default)]
    pub updated_at: String,
    /// What the serving replica observes of the resource (an Llm's health); read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::llm::LlmHealth>,
}

/// A collection: `{"items": [...]}`, and `metadata.continue` when the list was asked for a
/// page at a time (`?limit=N`) and another page may follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "{T}List")]
pub struct List<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ListMeta>,
}

/// A list's own fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListMeta {
    /// The token that fetches the next page (`?limit=N&continue=TOKEN`), opaque.
    #[serde(rename = "continue", default, skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
}

/// One event of a resource's history (`GET /api/v1/{plural}/{name}/history`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    pub resource_version: i64,
    pub event_type: String,
    pub recorded_at: String,
    pub actor: String,
    pub request_id: String,
    /// What the change came through (`api`, `migration`, …).
    pub source: String,
}

/// A kind's fields besides the envelope, as mcpd serialises them and mcpctl reads them, with
/// what `get` and `describe` show of them.
pub trait Spec: Serialize + DeserializeOwned + schemars::JsonSchema + Sized + 'static {
    const KIND: Kind;
    /// The columns `get` prints, kubectl style.
    const COLUMNS: &'static [Column<Self>];
    /// What `-o wide` adds.
    const WIDE: &'static [Column<Self>];
    /// What `describe` shows after the name and kind (some kinds add sections of their own).
    const DESCRIBE: &'static [Column<Self>];
}

/// One value shown to a person: under `label`, what `cell` takes from the document.
pub struct Column<S: 'static> {
    pub label: &'static str,
    pub cell: for<'a> fn(&'a Document<S>) -> Cell<'a>,
}

impl<S> Column<S> {
    pub const NAME: Self = Column { label: "NAME", cell: |d| Cell::Text(Cow::Borrowed(&d.name)) };
    pub const AGE: Self = Column { label: "AGE", cell: |d| Cell::Age(&d.created_at) };
    pub const VERSION: Self = Column { label: "VERSION", cell: |d| Cell::Text(d.resource_version.to_string().into()) };
}

/// `label` showing what `cell` takes from the document.
pub const fn column<S>(label: &'static str, cell: for<'a> fn(&'a Document<S>) -> Cell<'a>) -> Column<S> {
    Column { label, cell }
}

/// A value and how it is shown; mcpctl turns it into text.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// As it is (an empty value stays empty).
    Text(Cow<'a, str>),
    /// As it is, `<none>` when absent or empty.
    OrNone(Option<&'a str>),
    /// A time, `<never>` when absent.
    OrNever(Option<&'a str>),
    /// A secret key reference as `name/key`, `<none>` when absent.
    KeyRef(Option<&'a SecretKeyRef>),
    /// Comma-separated.
    List(&'a [String]),
    /// Comma-separated, `<none>` when empty.
    ListOrNone(&'a [String]),
    /// `k=v` pairs, comma-separated, `<none>` when empty.
    Pairs(&'a BTreeMap<String, String>),
    /// `yes` or `no`.
    YesNo(bool),
    /// The time since an RFC 3339 timestamp, kubectl style (`45s`, `3h`, `4d`).
    Age(&'a str),
    /// A role's rules, one `verbs resources[names]` or operations each.
    Rules(&'a [Rule]),
}

impl<'a> Cell<'a> {
    /// A number or flag as text.
    pub fn show(value: impl ToString) -> Cell<'a> {
        Cell::Text(Cow::Owned(value.to_string()))
    }
}

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

    #[test]
    fn kinds_travel_as_their_singular_name() {
        assert_eq!(serde_json::to_value(Kind::RoleBinding).unwrap(), "rolebinding");
        assert_eq!(serde_json::from_value::<Kind>("SecretBackends".into()).unwrap(), Kind::SecretBackend);
        let err = serde_json::from_value::<Kind>("widget".into()).unwrap_err();
        assert_eq!(err.to_string(), "unknown kind \"widget\"");
    }

    #[test]
    fn a_document_round_trips_with_its_envelope() {
        let json = serde_json::json!({
            "kind": "rolebinding", "name": "ops", "description": "", "role": "viewer", "users": ["ann"],
            "resourceVersion": 7, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-02T00:00:00Z",
        });
        let doc: Document<RoleBindingSpec> = serde_json::from_value(json.clone()).unwrap();
        assert_eq!((doc.name.as_str(), doc.spec.role.as_str(), doc.resource_version), ("ops", "viewer", 7));
        assert_eq!(serde_json::to_value(&doc).unwrap(), json);
    }
}
