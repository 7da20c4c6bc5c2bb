//! The OpenAPI 3.1 document of every route, served at `/v1/openapi.json`.
//! Paths and methods come from [`super::routes::ROUTES`]; a test checks the
//! document and the router agree.

use serde_json::{Map, Value, json};

use super::routes::{Access, ROUTES};

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        let mut operation = json!({
            "operationId": format!("{:?}", route.id),
            "summary": route.summary,
            "responses": { "default": { "description": "problem+json error" } },
        });
        if route.access != Access::Public {
            operation["security"] = json!([{ "bearer": [] }]);
        }
        if let Value::Object(map) = entry {
            map.insert(route.method.as_str().to_ascii_lowercase(), operation);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "exsec", "version": env!("CARGO_PKG_VERSION") },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        },
        "paths": paths,
    })
}
