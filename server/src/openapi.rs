//! The OpenAPI 3.1 description of mcpd's HTTP API, served at `GET /api/v1/openapi.json`.
//!
//! It is built from the route table the router passes in (every registered route): every route mcpd serves is
//! described, and a route this module cannot describe fails the test that walks the table.
//! Request bodies are the JSON Schemas of the types the handlers parse (the domain's `*Input`
//! types, with the patterns of their checks), responses those of the wire types mcpd serialises.

use axum::http::Method;
use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use wire::{Kind, KindVisitor, Spec};

use domain::validation::patterns;

/// Why the document could not be built: a route nobody described.
#[derive(Debug, thiserror::Error)]
#[error("route {method} {path} has no OpenAPI description")]
pub struct Undescribed {
    pub method: Method,
    pub path: String,
}

/// Schemas of what mcpd sends, by reference into `components/schemas`.
fn response_generator() -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12().for_serialize();
    settings.definitions_path = "/components/schemas/".into();
    settings.meta_schema = None;
    SchemaGenerator::new(settings)
}

/// The document: an operation per route of `routes`, the schemas they reference, and the
/// bearer scheme.
pub fn build(routes: &[crate::routes::Route]) -> Result<Value, Undescribed> {
    let mut generator = response_generator();
    let mut paths = Map::new();
    for crate::routes::Route { method, path, facts } in routes {
        let (method, path) = (method.clone(), path.clone());
        let mut operation = describe(&mut generator, &method, &path)
            .ok_or(Undescribed { method: method.clone(), path: path.clone() })?;
        if facts.open {
            operation["security"] = json!([]);
        }
        let item = paths.entry(path.clone()).or_insert_with(|| json!({})).as_object_mut().expect("an object");
        if path.contains('{') {
            item.insert("parameters".into(), Value::Array(path_parameters(&path)));
        }
        item.insert(method.as_str().to_ascii_lowercase(), operation);
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert("Error".into(), error_schema());
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "mcpd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The catalogue of LLMs, the secrets holding their keys and the backends storing those, \
                            with RBAC and an audit log; and inference served with those keys. \
                            Every route but /healthz, /readyz, /version and this document takes a bearer token.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "An mcpd API token (mcpctl create token)."}},
        },
    }))
}

fn path_parameters(path: &str) -> Vec<Value> {
    let mut parameters = Vec::new();
    if path.contains("{name}") {
        // Tokens are named by their id, which is not a resource name.
        let schema = if path.starts_with("/api/v1/tokens/") {
            json!({"type": "string", "minLength": 1})
        } else {
            json!({"type": "string", "pattern": patterns::NAME})
        };
        parameters.push(json!({"name": "name", "in": "path", "required": true, "schema": schema, "description": "The resource's name."}));
    }
    if path.contains("{id}") {
        parameters.push(json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}, "description": "The migration run's id."}));
    }
    if path.contains("{kind}") {
        parameters.push(json!({"name": "kind", "in": "path", "required": true,
            "schema": {"type": "string", "pattern": any_case(&kind_spellings(true))}, "description": "A kind: singular, plural or short name."}));
    }
    parameters
}

/// Every way a kind may be named (singular, plural; short names when `short`).
fn kind_spellings(short: bool) -> Vec<&'static str> {
    let mut names = Vec::new();
    for kind in Kind::ALL {
        let info = kind.info();
        names.extend([info.singular, info.plural]);
        if short {
            names.extend(info.short.iter().copied());
        }
    }
    names
}

/// A pattern matching exactly `words`, in any case.
fn any_case(words: &[&str]) -> String {
    let alternatives: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    format!("^({})$", alternatives.join("|"))
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message", "details", "requestId"],
            "properties": {
                "code": {"type": "string", "description": "Invalid, BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, RateLimited, Lagging, …"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object", "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
                "requestId": {"type": "string"},
            },
        }},
    })
}

/// `Idempotency-Key`: 1-255 visible ASCII characters, the client's own for each request.
fn idempotency_key() -> Value {
    json!({"type": "string", "pattern": "^[!-~]{1,255}$"})
}

/// A duration back from now (`2h`, `30m`, `7d`), or an RFC 3339 time.
fn point_in_time() -> Value {
    json!({"anyOf": [{"type": "string", "pattern": DURATION}, {"type": "string", "format": "date-time"}]})
}

/// [`app::time::short_duration`].
const DURATION: &str = "^(0|[1-9][0-9]{0,5})[smhd]$";

/// [`app::service::access::expiry`]'s durations: 1s to 3650d, in at most six digits.
fn expiry_pattern() -> String {
    format!("^(({})[sm]|({})h|({})d)$", up_to(999_999), up_to(3650 * 24), up_to(3650))
}

/// A pattern (unanchored alternatives) for the whole numbers 1 to `max`, without leading zeros.
fn up_to(max: u64) -> String {
    let digits: Vec<u32> = max.to_string().chars().map(|c| c.to_digit(10).expect("a digit")).collect();
    let n = digits.len();
    let mut alternatives = Vec::new();
    if n >= 2 {
        // Every number with fewer digits.
        alternatives.push(if n == 2 { "[1-9]".to_owned() } else { format!("[1-9][0-9]{{0,{}}}", n - 2) });
    }
    for i in 0..n {
        let low = if i == 0 { 1 } else { 0 };
        if digits[i] > low {
            let prefix: String = digits[..i].iter().map(|d| d.to_string()).collect();
            let rest = n - i - 1;
            let tail = if rest == 0 { String::new() } else { format!("[0-9]{{{rest}}}") };
            alternatives.push(format!("{prefix}[{low}-{}]{tail}", digits[i] - 1));
        }
    }
    alternatives.push(max.to_string());
    alternatives.join("|")
}

/// A log position as [`crate::http::audit::parse_cursor`] reads it.
const CURSOR: &str = "^([0-9]{1,18}:)?[0-9]{1,18}$";

/// One operation's description, assembled.
struct Op {
    summary: String,
    tag: &'static str,
    parameters: Vec<Value>,
    body: Option<Value>,
    responses: Map<String, Value>,
}

impl Op {
    fn new(tag: &'static str, summary: impl Into<String>) -> Self {
        Op { summary: summary.into(), tag, parameters: Vec::new(), body: None, responses: Map::new() }
    }

    fn query(mut self, name: &str, schema: Value, description: &str) -> Self {
        self.parameters.push(
            json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description}),
        );
        self
    }

    fn required_query(mut self, name: &str, schema: Value, description: &str) -> Self {
        self.parameters
            .push(json!({"name": name, "in": "query", "required": true, "schema": schema, "description": description}));
        self
    }

    fn header(mut self, name: &str, schema: Value, description: &str) -> Self {
        self.parameters.push(
            json!({"name": name, "in": "header", "required": false, "schema": schema, "description": description}),
        );
        self
    }

    fn body(mut self, schema: Value) -> Self {
        self.body = Some(json!({"required": true, "content": {"application/json": {"schema": schema}}}));
        self
    }

    fn answer(mut self, status: u16, description: &str, content: Option<(&str, Value)>) -> Self {
        let mut response = json!({"description": description});
        if let Some((media, schema)) = content {
            response["content"] = json!({media: {"schema": schema}});
        }
        self.responses.insert(status.to_string(), response);
        self
    }

    /// Another media type for an answer already described.
    fn also(mut self, status: u16, media: &str, schema: Value) -> Self {
        if let Some(content) = self.responses.get_mut(&status.to_string()).and_then(|r| r["content"].as_object_mut()) {
            content.insert(media.into(), json!({"schema": schema}));
        }
        self
    }

    fn json(self, status: u16, description: &str, schema: Value) -> Self {
        self.answer(status, description, Some(("application/json", schema)))
    }

    /// A write: `dryRun`, `Idempotency-Key`, and the 202 of a change the read models do not show yet.
    fn write(self) -> Self {
        self.query("dryRun", json!({"type": "boolean"}), "Validate and check every rule; record nothing.")
            .header(
                "Idempotency-Key",
                idempotency_key(),
                "Retrying with the same key and request returns the first answer and records nothing twice; \
                 a key is the client's own, one per request (reused for another request: 422).",
            )
            .json(202, "Recorded; the read models do not show it yet.", json!({"$ref": "#/components/schemas/Error"}))
    }

    fn if_match(self) -> Self {
        self.header(
            "If-Match",
            json!({"type": "string", "pattern": "^(\\*|(W/)?\"?[0-9]{1,19}\"?)$"}),
            "Only if the resource is at this resourceVersion.",
        )
    }

    fn finish(self) -> Value {
        let mut responses = self.responses;
        responses.insert("default".into(), json!({"description": "An error.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
        let mut op = json!({"summary": self.summary, "tags": [self.tag], "responses": responses});
        if !self.parameters.is_empty() {
            op["parameters"] = Value::Array(self.parameters);
        }
        if let Some(body) = self.body {
            op["requestBody"] = body;
        }
        op
    }
}

/// The request schema of a kind's document, where the kind takes generic POST and PUT; a create
/// names the resource in the body, a replace in the URL.
fn document_input(kind: Kind, create: bool) -> Option<Value> {
    use domain::document::document_schema;
    let mut schema = match kind {
        Kind::Llm => document_schema::<domain::llm::LlmInput>(),
        Kind::Secret => document_schema::<domain::secret::SecretInput>(),
        Kind::SecretBackend => document_schema::<domain::secret_backend::SecretBackendInput>(),
        Kind::Role => json!({
            "type": "object", "additionalProperties": false, "required": ["rules"],
            "properties": {
                "description": {"type": "string", "description": "Free text."},
                "rules": {"type": "array", "minItems": 1, "items": rule_input(),
                    "description": "What the role grants: each rule, verbs on resources (only the named ones, when names is given), or operations."},
            },
        }),
        Kind::RoleBinding => json!({
            "type": "object", "additionalProperties": false, "required": ["role", "users"],
            "properties": {
                "description": {"type": "string", "description": "Free text."},
                "role": {"type": "string", "pattern": patterns::NAME, "description": "The role granted (built-in or defined)."},
                "users": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": patterns::NAME},
                    "description": "The users it is granted to."},
            },
        }),
        Kind::User => json!({
            "type": "object", "additionalProperties": false,
            "properties": {"description": {"type": "string", "description": "Free text."}},
        }),
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

fn rule_input() -> Value {
    use domain::rbac::{OPERATIONS, RESOURCES, VERBS};
    let with_star = |names: &[&'static str]| {
        let mut all = names.to_vec();
        all.push("*");
        all
    };
    json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "resources": {"type": "array", "items": {"enum": with_star(&RESOURCES)}, "description": "The resources the verbs apply to (* for all)."},
            "verbs": {"type": "array", "items": {"enum": with_star(&VERBS)}, "description": "What may be done to them (* for all)."},
            "names": {"type": ["array", "null"], "items": {"type": "string", "pattern": patterns::NAME},
                "description": "Only the resources of these names; every one when absent."},
            "operations": {"type": "array", "items": {"enum": OPERATIONS}, "description": "Operations granted besides verbs (reveal:secrets, run:infer, …)."},
        },
        "description": "verbs on resources (only the named ones, when names is given), or operations",
        "anyOf": [
            {"required": ["resources", "verbs"], "properties": {"resources": {"minItems": 1}, "verbs": {"minItems": 1}}},
            {"required": ["operations"], "properties": {"operations": {"minItems": 1}, "resources": {"maxItems": 0}, "verbs": {"maxItems": 0}}},
        ],
    })
}

/// A kind's document and list schemas, by reference.
struct Schemas {
    one: Value,
    list: Value,
}

struct SchemasOf<'a>(&'a mut SchemaGenerator);

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
fn kind_route(path: &str) -> Option<(Kind, &str)> {
    let rest = path.strip_prefix("/api/v1/")?;
    let (plural, tail) = rest.split_once('/').map_or((rest, ""), |(p, t)| (p, t));
    let kind = Kind::ALL.into_iter().find(|k| k.info().plural == plural)?;
    Some((kind, tail))
}

fn describe(generator: &mut SchemaGenerator, method: &Method, path: &str) -> Option<Value> {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let object = json!({"type": "object"});
    let text = |op: Op, description: &str| op.answer(200, description, Some(("text/plain", json!({"type": "string"}))));
    let op = match (method.as_str(), path) {
        ("GET", "/healthz") => text(Op::new("probes", "Liveness: the process answers"), "ok"),
        ("GET", "/readyz") => Op::new("probes", "Readiness: the database answers and the read models run")
            .json(200, "Ready.", object.clone())
            .json(503, "Not ready, and why.", object.clone()),
        ("GET", "/version") => Op::new("probes", "mcpd's version")
            .json(200, "The version.", json!({"type": "object", "required": ["version"], "properties": {"version": {"type": "string"}}})),
        ("GET", "/metrics") => Op::new("operations", "Prometheus metrics (needs view:metrics)")
            .answer(200, "The exposition, text format 0.0.4.", Some(("text/plain", json!({"type": "string"})))),
        ("GET", "/api/v1/openapi.json") => Op::new("discovery", "This description").json(200, "OpenAPI 3.1.", object.clone()),
        ("GET", "/api/v1/schemas/{kind}") => Op::new("discovery", "The JSON Schema of a kind's document")
            .json(200, "A JSON Schema (draft 2020-12).", object.clone())
            .json(404, "The kind has no document schema.", error.clone()),
        ("GET", "/api/v1/whoami") => Op::new("access", "Who the token authenticates").json(200, "The caller.",
            json!({"type": "object", "required": ["user", "tokenId"], "properties": {"user": {"type": "string"}, "tokenId": {"type": "string"}}})),
        ("GET", "/api/v1/auth/can-i") => Op::new("access", "May the caller do it?")
            .required_query("verb", json!({"type": "string"}), "A verb (view, create, edit, delete) or an operation (reveal:secrets).")
            .query("resource", json!({"type": "string"}), "The resource, for a verb.")
            .query("name", json!({"type": "string"}), "One resource by name.")
            .json(200, "The answer.", json!({"type": "object", "required": ["allowed", "user"],
                "properties": {"allowed": {"type": "boolean"}, "user": {"type": "string"}}})),
        ("POST", "/api/v1/tokens") => Op::new("access", "Issue a token (the answer shows it, once)")
            .body(json!({"type": "object", "additionalProperties": false, "required": ["user"], "properties": {
                "user": {"type": "string", "pattern": patterns::NAME},
                "expires": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": expiry_pattern()}],
                    "description": "A duration (30d, 12h, 90m, 45s; at most 3650d), or a future RFC 3339 time within 3650d; never when absent."},
                "description": {"type": "string"},
            }}))
            .header("Idempotency-Key", idempotency_key(), "A retry is 409: an issued token is never stored to be shown again.")
            .json(201, "The token's document, with `token`.", object.clone())
            .json(202, "Recorded, with `token`; the read models do not show it yet.", object.clone()),
        ("GET", "/api/v1/secretbackends/{name}/health") => Op::new("secretbackends", "Is the backend reachable, and does it let mcpd in?")
            .json(200, "ok, unreachable, sealed, permission denied or error, with a message.", object.clone()),
        ("POST", "/api/v1/secrets/migrate") => Op::new("migrations", "Move secrets from one backend to another (needs run:migrate-secrets)")
            .body(json!({"type": "object", "additionalProperties": false, "required": ["from", "to"], "properties": {
                "from": {"type": "string", "pattern": patterns::NAME},
                "to": {"type": "string", "pattern": patterns::NAME},
                "names": {"type": ["array", "null"], "items": {"type": "string", "pattern": patterns::NAME}},
                "keepSource": {"type": "boolean"},
                "dryRun": {"type": "boolean"},
            }}))
            .answer(200, "Progress, one JSON object per line.", Some(("application/x-ndjson", json!({"type": "string"})))),
        ("GET", "/api/v1/migrations") => {
            let s = Kind::Migration.visit(SchemasOf(generator));
            paged(Op::new("migrations", "The migration runs"), Kind::Migration).json(200, "The runs the caller may view.", s.list)
        }
        ("GET", "/api/v1/migrations/{id}") => {
            let s = Kind::Migration.visit(SchemasOf(generator));
            Op::new("migrations", "One migration run, with its history").json(200, "The run.", s.one)
        }
        ("GET", "/api/v1/audit") => Op::new("audit", "The audit log, newest first (needs view:audit)")
            .query("kind", json!({"type": "string", "pattern": any_case(&[&kind_spellings(true)[..], &["defaultbackend"]].concat())}), "Only this kind's events.")
            .query("name", json!({"type": "string"}), "Only this resource's.")
            .query("actor", json!({"type": "string"}), "Only this user's.")
            .query("type", json!({"type": "string"}), "Only events of this type.")
            .query("since", point_in_time(), "Not before this time.")
            .query("until", point_in_time(), "Not after this time.")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), "Rows per page (100).")
            .query("after", json!({"type": "string", "pattern": CURSOR}), "Older than this cursor (a row's position): the next page.")
            .query("newer", json!({"type": "string", "pattern": CURSOR}), "Newer than this cursor, oldest first: following the log. Not with after.")
            .json(200, "One page.", Value::from(generator.subschema_for::<wire::audit::AuditPage>())),
        ("GET", "/api/v1/audit/denials") => Op::new("audit", "Requests mcpd refused (401, 403), newest first (needs view:audit)")
            .query("actor", json!({"type": "string"}), "Only this user's (refused authentications have none).")
            .query("status", json!({"type": "integer", "enum": [401, 403]}), "Only refusals with this status.")
            .query("since", point_in_time(), "Not before this time.")
            .query("until", point_in_time(), "Not after this time.")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), "Rows per page (100).")
            .query("after", json!({"type": "string", "pattern": "^[0-9]{1,18}$"}), "Older than this row's id: the next page.")
            .json(200, "One page.", Value::from(generator.subschema_for::<wire::audit::DenialPage>())),
        ("GET", "/api/v1/projections") => Op::new("operations", "The read models and how far each has got")
            .json(200, "Every read model.", object.clone()),
        ("POST", "/api/v1/projections/rebuild") => Op::new("operations", "Rebuild read models from the event log (needs run:rebuild-projections)")
            .body(selection(json!([
                {"required": ["names"], "properties": {"names": {"minItems": 1}, "all": {"const": false}}},
                {"required": ["all"], "properties": {"names": {"maxItems": 0}, "all": {"const": true}}},
            ])))
            .json(202, "Started: the read models' status.", object.clone()),
        ("POST", "/api/v1/projections/verify") => Op::new("operations", "Replay the log and compare with the read models (needs run:rebuild-projections)")
            .body(selection(json!([
                {"properties": {"all": {"const": false}}},
                {"properties": {"names": {"maxItems": 0}}},
            ])))
            .json(200, "The rows that differ.", object.clone()),
        ("POST", "/openai/v1/chat/completions") | ("POST", "/anthropic/v1/messages") => {
            let surface = if path.starts_with("/openai") { "OpenAI" } else { "Anthropic" };
            Op::new("inference", format!("{surface}-compatible inference with the Llm's own key (needs run:infer)"))
                .body(json!({"type": "object", "required": ["model"], "properties": {
                    "model": {"type": "string", "description": "An Llm's name, or tier:fast / tier:heavy."},
                    "stream": {"type": "boolean"},
                }}))
                .json(200, "The provider's answer, in this surface's format.", object.clone())
                .also(200, "text/event-stream", json!({"type": "string"}))
        }
        ("GET", "/openai/v1/models") => Op::new("inference", "The Llms the caller may use, OpenAI style")
            .json(200, "The models.", json!({"type": "object", "required": ["data"], "properties": {"data": {"type": "array"}}})),
        ("POST", "/api/v1/llms/{name}/warmup") => Op::new("inference", "Check the Llm's endpoint and key (loads an ollama model)")
            .json(200, "The Llm's health.", object.clone()),
        ("GET", "/api/v1/usage") => Op::new("inference", "Requests, errors and tokens per user and Llm")
            .query("llm", json!({"type": "string"}), "Only this Llm's.")
            .query("user", json!({"type": "string"}), "Only this user's (another's needs view:audit).")
            .query("since", json!({"anyOf": [{"type": "string", "pattern": "^((0|[1-9][0-9]{0,5})[smhd])?$"}, {"type": "string", "format": "date-time"}]}),
                "Since this time, or this long ago; empty for all time.")
            .json(200, "The rows.", json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}}})),
        _ => return kind_operation(generator, method, path),
    };
    Some(op.finish())
}

/// Which read models (`names`, or `all`; both is 422), with what else `rules` require.
fn selection(rules: Value) -> Value {
    let names: Vec<&str> = projections::read_models::ReadModel::ALL.iter().map(|m| m.name()).collect();
    json!({"type": "object", "additionalProperties": false, "properties": {
        "names": {"type": "array", "items": {"enum": names}},
        "all": {"type": "boolean"},
    }, "anyOf": rules})
}

/// The order `kind`'s list is in, which its continue tokens name a place in.
fn order_of(kind: Kind) -> projections::read_models::page::Order {
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
fn paged(op: Op, kind: Kind) -> Op {
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
fn kind_operation(generator: &mut SchemaGenerator, method: &Method, path: &str) -> Option<Value> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_ranges_match_exactly_their_numbers() {
        for max in [1, 9, 10, 60, 99, 100, 3650, 87_600, 999_999] {
            let pattern = regex::Regex::new(&format!("^({})$", up_to(max))).unwrap();
            for n in 0..=max + 11 {
                assert_eq!(pattern.is_match(&n.to_string()), (1..=max).contains(&n), "{n} against 1..={max}");
            }
            assert!(!pattern.is_match(&format!("0{max}")), "a leading zero");
        }
    }

    #[test]
    fn kinds_match_in_any_case() {
        let pattern = any_case(&["llm", "llms"]);
        assert_eq!(pattern, "^([lL][lL][mM]|[lL][lL][mM][sS])$");
    }
}
