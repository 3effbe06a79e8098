//! The descriptions of the routes that are not a kind's generic ones, by area.

use axum::http::Method;
use schemars::SchemaGenerator;
use serde_json::{Value, json};
use wire::Kind;

use domain::validation::patterns;

use super::kinds::{SchemasOf, kind_operation, paged};
use super::{CURSOR, Op, any_case, expiry_pattern, idempotency_key, kind_spellings, point_in_time};

/// The description of `method` on `path`; `None` for a route nobody described.
pub(super) fn describe(generator: &mut SchemaGenerator, method: &Method, path: &str) -> Option<Value> {
    let route = (method.as_str(), path);
    let op = probes(route)
        .or_else(|| access(route))
        .or_else(|| migrations(generator, route))
        .or_else(|| audit(generator, route))
        .or_else(|| inference(route));
    match op {
        Some(op) => Some(op.finish()),
        None => kind_operation(generator, method, path),
    }
}

fn error() -> Value {
    json!({"$ref": "#/components/schemas/Error"})
}

fn object() -> Value {
    json!({"type": "object"})
}

/// Probes and discovery.
fn probes(route: (&str, &str)) -> Option<Op> {
    let text = |op: Op, description: &str| op.answer(200, description, Some(("text/plain", json!({"type": "string"}))));
    Some(match route {
        ("GET", "/healthz") => text(Op::new("probes", "Liveness: the process answers"), "ok"),
        ("GET", "/readyz") => Op::new("probes", "Readiness: the database answers and the read models run")
            .json(200, "Ready.", object())
            .json(503, "Not ready, and why.", object()),
        ("GET", "/version") => Op::new("probes", "mcpd's version").json(
            200,
            "The version.",
            json!({"type": "object", "required": ["version"], "properties": {"version": {"type": "string"}}}),
        ),
        ("GET", "/metrics") => Op::new("operations", "Prometheus metrics (needs view:metrics)").answer(
            200,
            "The exposition, text format 0.0.4.",
            Some(("text/plain", json!({"type": "string"}))),
        ),
        ("GET", "/api/v1/openapi.json") => Op::new("discovery", "This description").json(200, "OpenAPI 3.1.", object()),
        ("GET", "/api/v1/schemas/{kind}") => Op::new("discovery", "The JSON Schema of a kind's document")
            .json(200, "A JSON Schema (draft 2020-12).", object())
            .json(404, "The kind has no document schema.", error()),
        _ => return None,
    })
}

/// Who the caller is, what it may do, and its tokens.
fn access(route: (&str, &str)) -> Option<Op> {
    Some(match route {
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
            .json(201, "The token's document, with `token`.", object())
            .json(202, "Recorded, with `token`; the read models do not show it yet.", object()),
        _ => return None,
    })
}

/// Secret backends' health and migrations.
fn migrations(generator: &mut SchemaGenerator, route: (&str, &str)) -> Option<Op> {
    Some(match route {
        ("GET", "/api/v1/secretbackends/{name}/health") => Op::new(
            "secretbackends",
            "Is the backend reachable, and does it let mcpd in?",
        )
        .json(200, "ok, unreachable, sealed, permission denied or error, with a message.", object()),
        ("POST", "/api/v1/secrets/migrate") => {
            Op::new("migrations", "Move secrets from one backend to another (needs run:migrate-secrets)")
                .body(
                    json!({"type": "object", "additionalProperties": false, "required": ["from", "to"], "properties": {
                        "from": {"type": "string", "pattern": patterns::NAME},
                        "to": {"type": "string", "pattern": patterns::NAME},
                        "names": {"type": ["array", "null"], "items": {"type": "string", "pattern": patterns::NAME}},
                        "keepSource": {"type": "boolean"},
                        "dryRun": {"type": "boolean"},
                    }}),
                )
                .answer(
                    200,
                    "Progress, one JSON object per line.",
                    Some(("application/x-ndjson", json!({"type": "string"}))),
                )
        }
        ("GET", "/api/v1/migrations") => {
            let s = Kind::Migration.visit(SchemasOf(generator));
            paged(Op::new("migrations", "The migration runs"), Kind::Migration).json(
                200,
                "The runs the caller may view.",
                s.list,
            )
        }
        ("GET", "/api/v1/migrations/{id}") => {
            let s = Kind::Migration.visit(SchemasOf(generator));
            Op::new("migrations", "One migration run, with its history").json(200, "The run.", s.one)
        }
        _ => return None,
    })
}

/// The audit log and the read models.
fn audit(generator: &mut SchemaGenerator, route: (&str, &str)) -> Option<Op> {
    Some(match route {
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
            .json(200, "Every read model.", object()),
        ("POST", "/api/v1/projections/rebuild") => Op::new("operations", "Rebuild read models from the event log (needs run:rebuild-projections)")
            .body(selection(json!([
                {"required": ["names"], "properties": {"names": {"minItems": 1}, "all": {"const": false}}},
                {"required": ["all"], "properties": {"names": {"maxItems": 0}, "all": {"const": true}}},
            ])))
            .json(202, "Started: the read models' status.", object()),
        ("POST", "/api/v1/projections/verify") => Op::new("operations", "Replay the log and compare with the read models (needs run:rebuild-projections)")
            .body(selection(json!([
                {"properties": {"all": {"const": false}}},
                {"properties": {"names": {"maxItems": 0}}},
            ])))
            .json(200, "The rows that differ.", object()),
        _ => return None,
    })
}

/// The inference proxy, warmups and usage.
fn inference(route: (&str, &str)) -> Option<Op> {
    Some(match route {
        ("POST", "/openai/v1/chat/completions") | ("POST", "/anthropic/v1/messages") => {
            let surface = if route.1.starts_with("/openai") { "OpenAI" } else { "Anthropic" };
            Op::new("inference", format!("{surface}-compatible inference with the Llm's own key (needs run:infer)"))
                .body(json!({"type": "object", "required": ["model"], "properties": {
                    "model": {"type": "string", "description": "An Llm's name, or tier:fast / tier:heavy."},
                    "stream": {"type": "boolean"},
                }}))
                .json(200, "The provider's answer, in this surface's format.", object())
                .also(200, "text/event-stream", json!({"type": "string"}))
        }
        ("GET", "/openai/v1/models") => Op::new("inference", "The Llms the caller may use, OpenAI style")
            .json(200, "The models.", json!({"type": "object", "required": ["data"], "properties": {"data": {"type": "array"}}})),
        ("POST", "/api/v1/llms/{name}/warmup") => Op::new("inference", "Check the Llm's endpoint and key (loads an ollama model)")
            .json(200, "The Llm's health.", object()),
        ("GET", "/api/v1/usage") => Op::new("inference", "Requests, errors and tokens per user and Llm")
            .query("llm", json!({"type": "string"}), "Only this Llm's.")
            .query("user", json!({"type": "string"}), "Only this user's (another's needs view:audit).")
            .query("since", json!({"anyOf": [{"type": "string", "pattern": "^((0|[1-9][0-9]{0,5})[smhd])?$"}, {"type": "string", "format": "date-time"}]}),
                "Since this time, or this long ago; empty for all time.")
            .json(200, "The rows.", json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}}})),

        _ => return None,
    })
}

/// Which read models (`names`, or `all`; both is 422), with what else `rules` require.
pub(super) fn selection(rules: Value) -> Value {
    let names: Vec<&str> = projections::read_models::ReadModel::ALL.iter().map(|m| m.name()).collect();
    json!({"type": "object", "additionalProperties": false, "properties": {
        "names": {"type": "array", "items": {"enum": names}},
        "all": {"type": "boolean"},
    }, "anyOf": rules})
}
