//! A secret's document: its key names and where its values are, never the values unless they
//! were asked for (`?reveal=true`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::document::{Cell, Column, Spec, column};
use crate::{Kind, ResourceName};

/// What mcpd knows of a Secret besides its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretState {
    pub backend: ResourceName,
    pub description: String,
    pub keys: Vec<String>,
    pub data_version: i64,
    /// Which version of the values is current: mcpd's own bookkeeping, never on the wire.
    #[serde(skip)]
    pub value_ref: String,
    /// Where an external backend keeps the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
}

/// A Secret as the API shows it: key names always, values only when asked to reveal them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SecretView {
    #[serde(flatten)]
    pub state: SecretState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
    /// In a revealing list: why this secret's values could not be read (its backend is
    /// unreachable, sealed, denies mcpd), so one backend's outage does not fail the whole list.
    #[serde(rename = "revealError", default, skip_serializing_if = "Option::is_none")]
    pub reveal_error: Option<String>,
}

impl Spec for SecretView {
    const KIND: Kind = Kind::Secret;
    const COLUMNS: &'static [Column<Self>] = &[
        Column::NAME,
        column("BACKEND", |d| Cell::Text(Cow::Borrowed(d.spec.state.backend.as_str()))),
        column("KEYS", |d| Cell::List(&d.spec.state.keys)),
        Column::AGE,
    ];
    const WIDE: &'static [Column<Self>] = &[
        column("DATA VERSION", |d| Cell::show(d.spec.state.data_version)),
        Column::VERSION,
        column("DESCRIPTION", |d| Cell::Text(Cow::Borrowed(&d.spec.state.description))),
    ];
    const DESCRIBE: &'static [Column<Self>] = &[
        column("Backend", |d| Cell::Text(Cow::Borrowed(d.spec.state.backend.as_str()))),
        column("Keys", |d| Cell::ListOrNone(&d.spec.state.keys)),
        column("Data Version", |d| Cell::show(d.spec.state.data_version)),
    ];
}
