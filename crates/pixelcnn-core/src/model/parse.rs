//! User JSON → typed configuration through serde's derive, with errors that
//! name the path of the offending field (`model.filters`, `data.trainLabels[3]`)
//! and quote its value. Every config type is parsed here and nowhere else.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A value as it appears in messages: JSON, cut at 60 characters (by
/// characters, not bytes: a byte index could fall inside a UTF-8 character).
pub fn quote(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 { format!("{}…", s.chars().take(60).collect::<String>()) } else { s }
}

/// `prefix.path` (or just one of them when the other is empty).
pub fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty() || prefix == "config", path.is_empty() || path == ".") {
        (true, true) => "config".to_string(),
        (true, false) => path.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// Deserializes `value` (null reads as `{}`) into `T`; `prefix` names where it sits.
pub fn from_value<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T> {
    let value = if value.is_null() { Value::Object(Default::default()) } else { value.clone() };
    if !value.is_object() {
        return Err(Error::config(join(prefix, ""), format!("must be an object, got {}", quote(&value))));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // A missing field is reported at its parent; name the field itself.
        if let Some(name) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            return Error::config(join(&join(prefix, &path), name), "is required");
        }
        Error::config(join(prefix, &path), describe(&message))
    })
}

/// serde says "invalid type: floating point `2.5`, expected i64"; users read
/// "must be an integer, got 2.5", as everywhere else in the library.
fn describe(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    let expected = |what: &str| match what {
        "i64" => "an integer".to_string(),
        "u64" => "a non-negative integer".to_string(),
        "f64" => "a number".to_string(),
        "a string" | "a boolean" | "a sequence" => what.to_string(),
        other => other.to_string(),
    };
    for kind in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(kind) {
            if let Some((got, want)) = rest.rsplit_once(", expected ") {
                return format!("must be {}, got {}", expected(want), shown(got));
            }
        }
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (name, known) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let known = known.trim_start_matches("one of ").replace('`', "");
        return format!("is not a known option{}", if known.is_empty() { String::new() } else { format!(" (known: {known})") }).replace(&format!("{name} "), "");
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (name, known) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let known = known.trim_start_matches("one of ").replace(" or ", ", ").replace('`', "");
        return format!("must be one of {known}, got {}", quote(&Value::String(name.trim_matches('`').to_string())));
    }
    format!("is invalid: {message}")
}

/// serde's description of a value (`floating point \`2.5\``, `string "x"`) as JSON.
fn shown(got: &str) -> String {
    let value = match (got.find('`'), got.rfind('`')) {
        (Some(a), Some(b)) if b > a => got[a + 1..b].to_string(),
        _ => match got.find('"') {
            Some(a) => got[a..].to_string(),
            None => got.to_string(),
        },
    };
    if value.chars().count() > 60 { format!("{}…", value.chars().take(60).collect::<String>()) } else { value }
}

/// An integer field's range check, with the value quoted.
pub fn check_range(field: &str, value: i64, min: i64, max: i64) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::config(field, format!("must be between {min} and {max}, got {value}")))
    }
}

/// An architecture's field that must be given (`model.<name>`).
pub fn required(name: &str, value: Option<i64>) -> Result<i64> {
    value.ok_or_else(|| Error::config(format!("model.{name}"), "is required for this architecture"))
}

/// A kernel side: odd, from `min` to 31 (`model.<name>`).
pub fn check_odd(name: &str, k: i64, min: i64) -> Result<()> {
    if k >= min && k % 2 == 1 && k <= 31 {
        Ok(())
    } else {
        Err(Error::config(format!("model.{name}"), format!("must be an odd number between {min} and 31, got {k}")))
    }
}

/// Threads that libtorch accepts: at least 1, at most 1,024.
pub fn check_threads(field: &str, threads: Option<i64>) -> Result<()> {
    match threads {
        Some(n) => check_range(field, n, 1, 1024),
        None => Ok(()),
    }
}
