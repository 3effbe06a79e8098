//! The OpenAPI description: every route mcpd serves is in it with its method, nothing else is,
//! it is served without a token, and the bodies it describes are the ones mcpd takes (checked
//! against real answers; schemathesis, run by scripts/test.sh, fuzzes the rest).

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{StoreKind, TestApp};

testkit::on_both_stores!(
    the_description_is_served_without_a_token_and_names_every_route,
    a_document_get_shows_can_be_sent_back_and_its_kind_is_described,
    every_body_is_an_object,
);

/// Found by schemathesis: serde reads a JSON array as a struct's fields in order, so `[[]]`
/// was a valid projections selection and `["alice"]` a token request.
async fn every_body_is_an_object(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.post("/api/v1/users", json!({"name": "alice"})).await.succeeded();
    for (path, body) in [
        ("/api/v1/tokens", json!(["alice"])),
        ("/api/v1/projections/verify", json!([[]])),
        ("/api/v1/secrets/migrate", json!(["default", "spare"])),
        ("/api/v1/roles", json!(["r", [], []])),
        ("/api/v1/llms", json!("claude")),
    ] {
        let r = t.post(path, body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {:?}", r.body);
        assert_eq!(r.message(), "the body must be a JSON object", "{path}");
    }
    let tokens = t.get("/api/v1/tokens").await.body;
    assert!(tokens["items"].as_array().unwrap().iter().all(|i| i["user"] != "alice"), "no token was issued: {tokens}");
}

async fn the_description_is_served_without_a_token_and_names_every_route(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let r = t.call_as(None, Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let doc = r.body;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
    assert_eq!(doc["security"], json!([{"bearerAuth": []}]));

    let mut described = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            described.insert((method.to_uppercase(), path.clone()));
            assert!(
                operation["responses"]["default"]["content"]["application/json"]["schema"]["$ref"]
                    == "#/components/schemas/Error",
                "{method} {path}: errors are described"
            );
            // Open routes say so; every other one takes the bearer token.
            let open = ["/healthz", "/readyz", "/version", "/api/v1/openapi.json"].contains(&path.as_str());
            assert_eq!(operation.get("security") == Some(&json!([])), open, "{method} {path}");
        }
    }
    let served: BTreeSet<(String, String)> =
        server::router::route_list().into_iter().map(|r| (r.method.to_string(), r.path)).collect();
    assert_eq!(described, served, "the description names exactly the routes mcpd serves");

    // Every reference resolves.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
    }
    // The open routes answer without a token, as described; a described route needing one does not.
    for path in ["/healthz", "/readyz", "/version"] {
        assert_eq!(t.call_as(None, Method::GET, path, None).await.status, StatusCode::OK, "{path}");
    }
    assert_eq!(t.call_as(None, Method::GET, "/api/v1/llms", None).await.status, StatusCode::UNAUTHORIZED);
}

async fn a_document_get_shows_can_be_sent_back_and_its_kind_is_described(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let doc = t.get("/api/v1/openapi.json").await.body;
    let create =
        &doc["paths"]["/api/v1/secretbackends"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(create["additionalProperties"], false, "unknown fields are refused, and described so");
    let required: Vec<&str> = create["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(required.contains(&"name") && required.contains(&"type"), "{required:?}");
    let types: Vec<&Value> =
        create["properties"]["type"]["oneOf"].as_array().unwrap().iter().map(|v| &v["const"]).collect();
    assert_eq!(types, [&json!("plaintext"), &json!("openbao")], "each type, with what it means");
    // A replace takes its name from the URL.
    let replace =
        &doc["paths"]["/api/v1/secretbackends/{name}"]["put"]["requestBody"]["content"]["application/json"]["schema"];
    assert!(replace["properties"].get("name").is_none(), "{replace}");

    // What GET shows, read-only fields and all, is what the described create takes.
    let body = json!({"name": "spare", "type": "plaintext", "description": "d"});
    assert_eq!(t.post("/api/v1/secretbackends", body).await.status, StatusCode::CREATED);
    let shown = t.get("/api/v1/secretbackends/spare").await.body;
    for field in shown.as_object().unwrap().keys() {
        assert!(create["properties"].get(field).is_some(), "{field} shown by GET is described for create");
    }
    // The answer's own schema names every field the answer carries.
    let one = &doc["paths"]["/api/v1/secretbackends/{name}"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"]["$ref"];
    let name = one.as_str().unwrap().trim_start_matches("#/components/schemas/");
    let schema = &doc["components"]["schemas"][name];
    for field in shown.as_object().unwrap().keys() {
        assert!(described_field(&doc, schema, field), "{field} is in {name}: {schema}");
    }
}

/// Whether `schema` (or a schema it composes with allOf / $ref) describes `field`.
fn described_field(doc: &Value, schema: &Value, field: &str) -> bool {
    if schema["properties"].get(field).is_some() {
        return true;
    }
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return described_field(doc, &doc["components"]["schemas"][name], field);
    }
    schema["allOf"].as_array().into_iter().flatten().any(|s| described_field(doc, s, field))
}
