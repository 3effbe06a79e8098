//! The documents mcpd sends and mcpctl reads: one envelope ([`Document`]) around each kind's
//! fields ([`Spec`]), and what a person is shown of them ([`Column`], [`Cell`]). mcpd
//! serialises exactly these types and mcpctl deserialises them, so a field renamed on one side
//! is renamed on the other, and a column naming a field that does not exist does not compile.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Kind;
use crate::name::SecretKeyRef;
use crate::rule::Rule;

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
    pub health: Option<crate::health::LlmHealth>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::RoleBindingSpec;

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
