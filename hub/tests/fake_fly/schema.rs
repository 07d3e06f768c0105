//! The published contract (`fly-machines-openapi.json`, Fly's Swagger 2.0
//! document for the Machines API, copied from `shared/specs`) as a checker:
//! does a JSON value fit a definition, is a route one of its paths.
//!
//! It checks what a client relies on: types, enums, nesting, and no field
//! the contract doesn't name. `null` passes for any field, as Fly's Go
//! server writes absent values so. The few known deltas of the current API
//! from this 2024 edition (see `shared/specs/README.md`) are listed in
//! `DELTAS` instead of being silently accepted.

use serde_json::Value;

/// Fields the current API returns that the 2024 document lacks.
const DELTAS: [&str; 2] = ["Machine.version", "Machine.host_status"];

/// The Machines API contract.
pub struct Contract {
    doc: Value,
}

impl Contract {
    pub fn load() -> Self {
        Self { doc: serde_json::from_str(include_str!("fly-machines-openapi.json")).expect("the contract parses") }
    }

    /// Whether `method path` (e.g. `GET /apps/{app_name}/machines/{machine_id}/wait`) is in the contract.
    pub fn has_route(&self, method: &str, path: &str) -> bool {
        self.doc["paths"][path].get(method.to_ascii_lowercase()).is_some()
    }

    /// What in `value` does not fit definition `name`, one line per problem.
    pub fn check(&self, name: &str, value: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        self.check_ref(name, value, name, &mut problems);
        problems
    }

    fn check_ref(&self, name: &str, value: &Value, at: &str, out: &mut Vec<String>) {
        // fly.Duration is a Go time.Duration, which the API reads and writes
        // as a string like "10s"; the document's object shape is an artefact.
        if name == "fly.Duration" {
            if !(value.is_string() || value.is_null()) {
                out.push(format!("{at}: want a duration string, got {value}"));
            }
            return;
        }
        let schema = &self.doc["definitions"][name];
        assert!(!schema.is_null(), "no definition {name}");
        self.check_schema(schema, value, at, name, out);
    }

    fn check_schema(&self, schema: &Value, value: &Value, at: &str, def: &str, out: &mut Vec<String>) {
        if value.is_null() {
            return;
        }
        if let Some(r) = schema["$ref"].as_str() {
            let name = r.trim_start_matches("#/definitions/");
            return self.check_ref(name, value, at, out);
        }
        if let Some(all) = schema["allOf"].as_array() {
            for s in all {
                self.check_schema(s, value, at, def, out);
            }
            return;
        }
        let ok = match schema["type"].as_str() {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            _ => true,
        };
        if !ok {
            out.push(format!("{at}: want {}, got {value}", schema["type"]));
            return;
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            out.push(format!("{at}: {value} is not one of {}", schema["enum"]));
        }
        if let Some(items) = value.as_array() {
            for (i, item) in items.iter().enumerate() {
                self.check_schema(&schema["items"], item, &format!("{at}[{i}]"), def, out);
            }
        }
        if let Some(fields) = value.as_object() {
            let props = schema["properties"].as_object();
            let extra = &schema["additionalProperties"];
            for (k, v) in fields {
                let here = format!("{at}.{k}");
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.check_schema(s, v, &here, def, out),
                    None if extra.is_object() => self.check_schema(extra, v, &here, def, out),
                    None if props.is_some() && !DELTAS.contains(&format!("{def}.{k}").as_str()) => {
                        out.push(format!("{here}: not in the contract"))
                    }
                    None => {}
                }
            }
        }
    }
}
