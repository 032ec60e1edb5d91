//! The structural check: walks the parsed TOML (with spans) alongside the JSON Schema of
//! `raw.rs` and reports every unknown key, missing key and wrong type at once. Only when the
//! structure is sound does serde see the file, so serde's stop-at-the-first-error never hides
//! a second problem from the user.

use serde_json::Value as Json;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::Problem;
use crate::domain::did_you_mean;

/// Checks `table` against `schema` (the whole schema document, for `$ref` lookups).
pub fn check(table: &Spanned<DeTable<'_>>, schema: &Json) -> Vec<Problem> {
    let mut walker = Walker {
        root: schema,
        problems: Vec::new(),
    };
    walker.table(table.get_ref(), table.span(), schema, "");
    walker.problems
}

struct Walker<'s> {
    root: &'s Json,
    problems: Vec<Problem>,
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn json_type_matches(ty: &str, v: &DeValue<'_>) -> bool {
    match ty {
        "string" => matches!(v, DeValue::String(_)),
        "integer" => matches!(v, DeValue::Integer(_)),
        "number" => matches!(v, DeValue::Integer(_) | DeValue::Float(_)),
        "boolean" => matches!(v, DeValue::Boolean(_)),
        "array" => matches!(v, DeValue::Array(_)),
        "object" => matches!(v, DeValue::Table(_)),
        _ => false,
    }
}

/// The JSON types a schema allows, `null` left out (optional values are simply absent in TOML).
fn expected_types(schema: &Json) -> Vec<&'static str> {
    let named: Vec<&str> = match schema.get("type") {
        Some(Json::String(s)) => vec![s.as_str()],
        Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).collect(),
        _ if schema.get("properties").is_some() => vec!["object"],
        _ if schema.get("enum").is_some() => vec!["string"],
        _ => vec![],
    };
    named
        .into_iter()
        .filter_map(|t| {
            ["string", "integer", "number", "boolean", "array", "object"]
                .into_iter()
                .find(|k| *k == t)
        })
        .collect()
}

fn describe(ty: &str) -> &'static str {
    match ty {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean (`true` or `false`)",
        "array" => "an array",
        "object" => "a table",
        _ => "a value",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'s> Walker<'s> {
    /// Follows `$ref` and collapses `anyOf`/`oneOf` with `null` (how optional values appear) to
    /// the branch that fits `value`.
    fn resolve(&self, schema: &'s Json, value: Option<&DeValue<'_>>) -> &'s Json {
        if let Some(r) = schema.get("$ref").and_then(Json::as_str) {
            let name = r.rsplit('/').next().unwrap_or_default();
            if let Some(def) = self.root.get("$defs").and_then(|d| d.get(name)) {
                return self.resolve(def, value);
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = schema.get(key).and_then(Json::as_array) {
                let non_null: Vec<&Json> = branches
                    .iter()
                    .filter(|b| b.get("type").and_then(Json::as_str) != Some("null"))
                    .collect();
                let fitting = value.and_then(|v| {
                    non_null.iter().find(|b| {
                        expected_types(self.resolve(b, None))
                            .iter()
                            .any(|t| json_type_matches(t, v))
                    })
                });
                if let Some(b) = fitting.or(non_null.first()) {
                    return self.resolve(b, value);
                }
            }
        }
        schema
    }

    fn value(&mut self, value: &Spanned<DeValue<'_>>, schema: &'s Json, path: &str) {
        let schema = self.resolve(schema, Some(value.get_ref()));
        let expected = expected_types(schema);
        let v = value.get_ref();
        if !expected.is_empty() && !expected.iter().any(|t| json_type_matches(t, v)) {
            let want = expected
                .iter()
                .map(|t| describe(t))
                .collect::<Vec<_>>()
                .join(" or ");
            self.problems.push(
                Problem::new(format!("`{path}` must be {want}, not {}", type_name(v)))
                    .label(value.span(), format!("expected {want}")),
            );
            return;
        }
        match v {
            DeValue::Table(t) => self.table(t, value.span(), schema, path),
            DeValue::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.value(item, item_schema, &format!("{path}[{i}]"));
                    }
                }
            }
            DeValue::Integer(i) => {
                let min = schema.get("minimum").and_then(Json::as_i64);
                let n = i64::from_str_radix(
                    i.as_str().replace('_', "").trim_start_matches('+'),
                    i.radix(),
                )
                .ok();
                if let (Some(min), Some(n)) = (min, n)
                    && n < min
                {
                    self.problems.push(
                        Problem::new(format!("`{path}` must be at least {min}, not {n}"))
                            .label(value.span(), format!("at least {min}")),
                    );
                }
            }
            _ => {}
        }
    }

    fn table(
        &mut self,
        table: &DeTable<'_>,
        span: std::ops::Range<usize>,
        schema: &'s Json,
        path: &str,
    ) {
        let props = schema.get("properties").and_then(Json::as_object);
        let additional = schema.get("additionalProperties");
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let child_path = join(path, name);
            if let Some(prop) = props.and_then(|p| p.get(name)) {
                self.value(value, prop, &child_path);
            } else {
                match additional {
                    Some(Json::Bool(false)) => {
                        let known: Vec<&str> = props
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        let what = if path.is_empty() {
                            "the matrix".to_string()
                        } else {
                            format!("`{path}`")
                        };
                        let mut p = Problem::new(format!("unknown key `{name}` in {what}"))
                            .label(key.span(), "unknown key");
                        p = match did_you_mean(name, known.iter().copied()) {
                            Some(close) => p.help(format!("did you mean `{close}`?")),
                            None => p.help(format!("known keys: {}", known.join(", "))),
                        };
                        self.problems.push(p);
                    }
                    Some(s @ Json::Object(_)) => self.value(value, s, &child_path),
                    _ => {}
                }
            }
        }
        if let Some(required) = schema.get("required").and_then(Json::as_array) {
            for key in required.iter().filter_map(Json::as_str) {
                if !table.keys().any(|k| k.get_ref().as_ref() == key) {
                    let what = if path.is_empty() {
                        "the matrix".to_string()
                    } else {
                        format!("`{path}`")
                    };
                    self.problems.push(
                        Problem::new(format!("{what} is missing the required key `{key}`"))
                            .label(span.clone(), format!("add `{key} = ...` here")),
                    );
                }
            }
        }
    }
}
