//! Checks plugin parameters against the JSON Schema a plugin declares in its metadata.
//!
//! Vigil supports the part of JSON Schema that parameter objects need: `type` (one name or a
//! list), `properties`, `required`, `additionalProperties` (a boolean), `enum`, `const`,
//! `minimum`, `maximum`, `minLength`, `maxLength`, `items`, `minItems` and `maxItems`, plus the
//! annotations `$schema`, `$id`, `title`, `description`, `default` and `examples`. A schema that
//! uses any other keyword is refused when the plugin loads, so a parameter is never accepted
//! because a rule was silently skipped.

use serde_json::{Map, Value};

/// Keywords that constrain values.
const CHECKED_KEYWORDS: [&str; 13] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "const",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "items",
    "minItems",
    "maxItems",
];

/// Keywords that only describe.
const ANNOTATIONS: [&str; 6] = [
    "$schema",
    "$id",
    "title",
    "description",
    "default",
    "examples",
];

/// A parsed schema whose keywords are all supported.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterSchema(Value);

impl ParameterSchema {
    /// Parses `text` and checks that every keyword at every level is supported.
    pub fn parse(text: &str) -> Result<Self, String> {
        let schema: Value = serde_json::from_str(text)
            .map_err(|error| format!("the schema is not JSON: {error}"))?;
        check_supported(&schema, "#")?;
        Ok(Self(schema))
    }

    /// Returns every way `value` breaks the schema, each with the path of the value, or
    /// nothing when it conforms.
    pub fn violations(&self, value: &Value) -> Vec<String> {
        let mut found = Vec::new();
        check_value(&self.0, value, "$", &mut found);
        found
    }
}

fn check_supported(schema: &Value, path: &str) -> Result<(), String> {
    let Value::Object(keywords) = schema else {
        return match schema {
            Value::Bool(_) => Ok(()),
            _ => Err(format!("the schema at `{path}` is not an object")),
        };
    };
    for (keyword, value) in keywords {
        if ANNOTATIONS.contains(&keyword.as_str()) {
            continue;
        }
        if !CHECKED_KEYWORDS.contains(&keyword.as_str()) {
            return Err(format!(
                "the schema at `{path}` uses `{keyword}`, which Vigil's schema checker does not \
                 support; supported keywords: {}",
                CHECKED_KEYWORDS.join(", ")
            ));
        }
        match keyword.as_str() {
            "properties" => {
                let Value::Object(properties) = value else {
                    return Err(format!("`properties` at `{path}` is not an object"));
                };
                for (name, property) in properties {
                    check_supported(property, &format!("{path}/properties/{name}"))?;
                }
            }
            "items" => check_supported(value, &format!("{path}/items"))?,
            "additionalProperties" if !value.is_boolean() => {
                return Err(format!(
                    "`additionalProperties` at `{path}` must be true or false"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_value(schema: &Value, value: &Value, path: &str, found: &mut Vec<String>) {
    let keywords = match schema {
        Value::Object(keywords) => keywords,
        Value::Bool(true) => return,
        _ => {
            found.push(format!("`{path}` is not allowed"));
            return;
        }
    };
    if let Some(expected) = keywords.get("type")
        && !type_matches(expected, value)
    {
        found.push(format!(
            "`{path}` must be of type {}, not {}",
            type_names(expected),
            type_of(value)
        ));
        return;
    }
    check_choices(keywords, value, path, found);
    check_number(keywords, value, path, found);
    check_string(keywords, value, path, found);
    check_array(keywords, value, path, found);
    check_object(keywords, value, path, found);
}

fn check_choices(
    keywords: &Map<String, Value>,
    value: &Value,
    path: &str,
    found: &mut Vec<String>,
) {
    if let Some(Value::Array(choices)) = keywords.get("enum")
        && !choices.contains(value)
    {
        found.push(format!(
            "`{path}` must be one of {}",
            Value::Array(choices.clone())
        ));
    }
    if let Some(constant) = keywords.get("const")
        && constant != value
    {
        found.push(format!("`{path}` must be {constant}"));
    }
}

fn check_number(keywords: &Map<String, Value>, value: &Value, path: &str, found: &mut Vec<String>) {
    let Some(number) = value.as_f64() else {
        return;
    };
    if let Some(minimum) = keywords.get("minimum").and_then(Value::as_f64)
        && number < minimum
    {
        found.push(format!("`{path}` must be at least {minimum}"));
    }
    if let Some(maximum) = keywords.get("maximum").and_then(Value::as_f64)
        && number > maximum
    {
        found.push(format!("`{path}` must be at most {maximum}"));
    }
}

fn check_string(keywords: &Map<String, Value>, value: &Value, path: &str, found: &mut Vec<String>) {
    let Some(text) = value.as_str() else {
        return;
    };
    let length = text.chars().count() as u64;
    if let Some(minimum) = keywords.get("minLength").and_then(Value::as_u64)
        && length < minimum
    {
        found.push(format!(
            "`{path}` must be at least {minimum} characters long"
        ));
    }
    if let Some(maximum) = keywords.get("maxLength").and_then(Value::as_u64)
        && length > maximum
    {
        found.push(format!(
            "`{path}` must be at most {maximum} characters long"
        ));
    }
}

fn check_array(keywords: &Map<String, Value>, value: &Value, path: &str, found: &mut Vec<String>) {
    let Some(items) = value.as_array() else {
        return;
    };
    let count = items.len() as u64;
    if let Some(minimum) = keywords.get("minItems").and_then(Value::as_u64)
        && count < minimum
    {
        found.push(format!("`{path}` must hold at least {minimum} items"));
    }
    if let Some(maximum) = keywords.get("maxItems").and_then(Value::as_u64)
        && count > maximum
    {
        found.push(format!("`{path}` must hold at most {maximum} items"));
    }
    if let Some(item_schema) = keywords.get("items") {
        for (index, item) in items.iter().enumerate() {
            check_value(item_schema, item, &format!("{path}[{index}]"), found);
        }
    }
}

fn check_object(keywords: &Map<String, Value>, value: &Value, path: &str, found: &mut Vec<String>) {
    let Some(object) = value.as_object() else {
        return;
    };
    if let Some(Value::Array(required)) = keywords.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                found.push(format!("`{path}.{name}` is required"));
            }
        }
    }
    let properties = keywords.get("properties").and_then(Value::as_object);
    let closed = keywords.get("additionalProperties") == Some(&Value::Bool(false));
    for (name, member) in object {
        match properties.and_then(|properties| properties.get(name)) {
            Some(property) => check_value(property, member, &format!("{path}.{name}"), found),
            None if closed => found.push(format!("`{path}.{name}` is not a known parameter")),
            None => {}
        }
    }
}

fn type_matches(expected: &Value, value: &Value) -> bool {
    match expected {
        Value::String(name) => is_type(name, value),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .any(|name| is_type(name, value)),
        _ => false,
    }
}

fn is_type(name: &str, value: &Value) -> bool {
    match name {
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        "number" => value.is_number(),
        other => type_of(value) == other,
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_names(expected: &Value) -> String {
    match expected {
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        other => other.as_str().unwrap_or("?").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn webhook_schema() -> ParameterSchema {
        ParameterSchema::parse(
            r#"{
                "type": "object",
                "properties": {
                    "url": {"type": "string", "minLength": 8},
                    "retries": {"type": "integer", "minimum": 0, "maximum": 5},
                    "format": {"enum": ["json", "text"]},
                    "headers": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
                },
                "required": ["url"],
                "additionalProperties": false
            }"#,
        )
        .expect("schema")
    }

    #[test]
    fn conforming_parameters_have_no_violations() {
        let params = json!({"url": "http://127.0.0.1:9000/", "retries": 3, "format": "json"});

        assert_eq!(webhook_schema().violations(&params), Vec::<String>::new());
    }

    #[test]
    fn each_violation_names_its_path() {
        let params = json!({
            "retries": 9,
            "format": "xml",
            "headers": ["a", 2, "c"],
            "colour": "red"
        });

        let violations = webhook_schema().violations(&params);

        assert_eq!(
            violations,
            vec![
                "`$.url` is required",
                "`$.retries` must be at most 5",
                "`$.format` must be one of [\"json\",\"text\"]",
                "`$.headers` must hold at most 2 items",
                "`$.headers[1]` must be of type string, not number",
                "`$.colour` is not a known parameter",
            ]
        );
    }

    #[test]
    fn integer_type_rejects_fractions() {
        let violations = webhook_schema().violations(&json!({"url": "http://x/y", "retries": 1.5}));

        assert_eq!(
            violations,
            vec!["`$.retries` must be of type integer, not number"]
        );
    }

    #[test]
    fn unsupported_keyword_is_refused_with_its_location() {
        let error = ParameterSchema::parse(
            r#"{"type": "object", "properties": {"url": {"type": "string", "pattern": "^http"}}}"#,
        )
        .expect_err("pattern is unsupported");

        assert!(
            error.starts_with("the schema at `#/properties/url` uses `pattern`"),
            "{error}"
        );
    }
}
