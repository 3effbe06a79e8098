//! The OpenAPI 3.1 description of mcpd's HTTP API, served at `GET /api/v1/openapi.json`.
//!
//! It is built from the route table the router passes in (every registered route): every route mcpd serves is
//! described, and a route this module cannot describe fails the test that walks the table.
//! Request bodies are the JSON Schemas of the types the handlers parse (the domain's `*Input`
//! types, with the patterns of their checks), responses those of the wire types mcpd serialises.

mod kinds;
mod routes;

use axum::http::Method;
use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use wire::Kind;

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
        let mut operation = routes::describe(&mut generator, &method, &path)
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
