//! Users and their API tokens.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::Kind;
use crate::document::{Cell, Column, Spec, column};

/// A user: who tokens authenticate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserState {
    /// Free text.
    pub description: String,
}

/// An API token, by id; never the token itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenState {
    /// The user the token authenticates.
    pub user: String,
    /// The token's hash: mcpd's own, never on the wire.
    #[serde(skip)]
    pub hash: String,
    /// When it stops working (RFC 3339); never when null.
    pub expires_at: Option<String>,
    /// Free text.
    pub description: String,
    /// Whether it was revoked (a revoked token authenticates nobody).
    pub revoked: bool,
    /// When it was last used, to the minute; null when never.
    pub last_used_at: Option<String>,
}

const DESCRIPTION_OF_USER: Column<UserState> =
    column("DESCRIPTION", |d| Cell::Text(Cow::Borrowed(&d.spec.description)));

impl Spec for UserState {
    const KIND: Kind = Kind::User;
    const COLUMNS: &'static [Column<Self>] = &[Column::NAME, DESCRIPTION_OF_USER, Column::AGE];
    const WIDE: &'static [Column<Self>] = &[Column::VERSION];
    const DESCRIBE: &'static [Column<Self>] = &[];
}

impl Spec for TokenState {
    const KIND: Kind = Kind::Token;
    const COLUMNS: &'static [Column<Self>] = &[
        column("ID", |d| Cell::Text(Cow::Borrowed(&d.name))),
        column("USER", |d| Cell::Text(Cow::Borrowed(&d.spec.user))),
        column("EXPIRES", |d| Cell::OrNever(d.spec.expires_at.as_deref())),
        column("LAST USED", |d| Cell::OrNever(d.spec.last_used_at.as_deref())),
        column("DESCRIPTION", |d| Cell::Text(Cow::Borrowed(&d.spec.description))),
        Column::AGE,
    ];
    const WIDE: &'static [Column<Self>] = &[Column::VERSION];
    const DESCRIBE: &'static [Column<Self>] = &[
        column("User", |d| Cell::Text(Cow::Borrowed(&d.spec.user))),
        column("Expires", |d| Cell::OrNone(d.spec.expires_at.as_deref())),
        column("Last Used", |d| Cell::OrNone(d.spec.last_used_at.as_deref())),
    ];
}
