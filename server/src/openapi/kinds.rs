//! The descriptions of each kind's generic routes (`crate::http::resources`), from the kind's
//! own document types.

use axum::http::Method;
use schemars::SchemaGenerator;
use serde_json::{Value, json};
use wire::{Kind, KindVisitor, Spec};

use domain::validation::patterns;

use super::{Op, any_case};

/// The request schema of a kind's document, where the kind takes generic POST and PUT; a create
/// names the resource in the body, a replace in the URL.
pub(super) fn document_input(kind: Kind, create: bool) -> Option<Value> {
    use domain::document::document_schema;
    let mut schema = match kind {
        Kind::Llm => document_schema::<domain::llm::LlmInput>(),
        Kind::Secret => document_schema::<domain::secret::SecretInput>(),
        Kind::SecretBackend => document_schema::<domain::secret_backend::SecretBackendInput>(),
        Kind::Role => document_schema::<domain::rbac::RoleInput>(),
        Kind::RoleBinding => document_schema::<domain::rbac::RoleBindingInput>(),
        Kind::User => document_schema::<domain::user::UserInput>(),
        Kind::Token | Kind::Migration => return None,
    };
    envelope(kind, &mut schema, create);
    if create {
        let required = schema.as_object_mut().expect("an object").entry("required").or_insert_with(|| json!([]));
        if let Some(required) = required.as_array_mut().filter(|r| !r.contains(&json!("name"))) {
            required.push(json!("name"));
        }
    }
    Some(schema)
}

/// `kind`, `name` and the read-only fields, on a document schema; a create needs the name.
fn envelope(kind: Kind, schema: &mut Value, create: bool) {
    let info = kind.info();
    let properties = schema["properties"].as_object_mut().expect("a document schema has properties");
    properties.insert(
        "kind".into(),
        json!({"type": ["string", "null"], "pattern": any_case(&[info.singular, info.plural]),
        "description": format!("{}; optional, the URL names the kind", info.singular)}),
    );
    // A replace takes the name from the URL. A body may repeat it (so that a document read with
    // GET can be sent back), which a schema cannot say: it must equal the URL's.
    if create {
        properties.insert(
            "name".into(),
            json!({"type": "string", "pattern": patterns::NAME, "description": "The new resource's name."}),
        );
    } else {
        properties.remove("name");
    }
    for field in info.read_only {
        properties.insert((*field).into(), json!({"readOnly": true, "description": "Set by mcpd; ignored on input."}));
    }
}

/// A kind's document and list schemas, by reference.
pub(super) struct Schemas {
    pub(super) one: Value,
    pub(super) list: Value,
}

pub(super) struct SchemasOf<'a>(pub(super) &'a mut SchemaGenerator);

impl KindVisitor for SchemasOf<'_> {
    type Output = Schemas;
    fn visit<S: Spec>(self) -> Schemas {
        Schemas {
            one: Value::from(self.0.subschema_for::<wire::Document<S>>()),
            list: Value::from(self.0.subschema_for::<wire::List<wire::Document<S>>>()),
        }
    }
}

/// The kind whose collection is `path` (`/api/v1/llms`), and what follows it.
pub(super) fn kind_route(path: &str) -> Option<(Kind, &str)> {
    let rest = path.strip_prefix("/api/v1/")?;
    let (plural, tail) = rest.split_once('/').map_or((rest, ""), |(p, t)| (p, t));
    let kind = Kind::ALL.into_iter().find(|k| k.info().plural == plural)?;
    Some((kind, tail))
}

/// The order `kind`'s list is in, which its continue tokens name a place in.
pub(super) fn order_of(kind: Kind) -> projections::read_models::page::Order {
    use app::service::{self as k, ResourceKind};
    match kind {
        Kind::Llm => k::Llms::ORDER,
        Kind::Secret => k::Secrets::ORDER,
        Kind::SecretBackend => k::SecretBackends::ORDER,
        Kind::Role => k::Roles::ORDER,
        Kind::RoleBinding => k::RoleBindings::ORDER,
        Kind::User => k::Users::ORDER,
        Kind::Token => k::Tokens::ORDER,
        Kind::Migration => projections::read_models::migrations::ORDER,
    }
}

/// `limit` and `continue`; a continue token is valid for its own kind's list only.
pub(super) fn paged(op: Op, kind: Kind) -> Op {
    op.query(
        "limit",
        json!({"type": "integer", "minimum": 1, "maximum": crate::http::extract::MAX_LIMIT}),
        "At most this many, with metadata.continue when more may follow.",
    )
    .query(
        "continue",
        json!({"type": "string", "pattern": crate::http::paging::token_pattern(kind, order_of(kind))}),
        "The previous page's metadata.continue, opaque; without limit, the rest of the list after it.",
    )
}

/// The generic routes of a kind ([`crate::http::resources`]).
pub(super) fn kind_operation(generator: &mut SchemaGenerator, method: &Method, path: &str) -> Option<Value> {
    let (kind, tail) = kind_route(path)?;
    let info = kind.info();
    let s = kind.visit(SchemasOf(generator));
    let reveal = |op: Op| {
        if kind == Kind::Secret {
            op.query("reveal", json!({"type": "boolean"}), "Show the values (needs reveal:secrets).")
        } else {
            op
        }
    };
    let op = match (method.as_str(), tail) {
        ("GET", "") => reveal(paged(Op::new(info.plural, format!("List {}", info.plural)), kind))
            .query("watch", json!({"type": "boolean"}), "Stream changes as NDJSON instead (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR).")
            .query("resourceVersion", json!({"type": "string", "pattern": "^(([0-9]{1,18}:)?[0-9]{1,18})?$"}), "With watch: resume after this position (a line's resourceVersion).")
            .query("sendInitialEvents", json!({"type": "boolean"}), "With watch: start with an ADDED line per resource (true).")
            .json(200, "The resources the caller may view.", s.list)
            .also(200, "application/x-ndjson", json!({"type": "string", "description": "With watch: one change per line."})),
        ("POST", "") => Op::new(info.plural, format!("Create a {}", info.singular))
            .body(document_input(kind, true)?)
            .write()
            .json(201, "Created.", s.one.clone())
            .json(200, "With dryRun: what would be created (nothing is).", s.one),
        ("GET", "{name}") => reveal(Op::new(info.plural, format!("Get a {}", info.singular))).json(200, "The resource.", s.one),
        ("PUT", "{name}") => Op::new(info.plural, format!("Replace a {}", info.singular))
            .body(document_input(kind, false)?)
            .if_match()
            .write()
            .json(200, "Replaced.", s.one),
        ("DELETE", "{name}") => Op::new(info.plural, format!("Delete a {}", info.singular))
            .if_match()
            .write()
            .answer(204, "Deleted.", None),
        ("GET", "{name}/history") => Op::new(info.plural, format!("A {}'s events, oldest first", info.singular))
            .json(200, "The events.", json!({"type": "object", "required": ["items"],
                "properties": {"items": {"type": "array", "items": Value::from(generator.subschema_for::<wire::HistoryEvent>())}}})),
        _ => return None,
    };
    Some(op.finish())
}
