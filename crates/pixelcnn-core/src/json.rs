//! Reading user configuration from JSON with the checks every field needs:
//! the right type, a finite value, an integer where one is expected, a range,
//! and no keys that nobody reads (a typo must not be silently ignored).

use crate::error::{Error, Result};
use serde_json::{Map, Value};

pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

fn quote(v: &Value) -> String {
    let s = v.to_string();
    // By characters, not bytes: a byte index could fall inside a UTF-8 character.
    if s.chars().count() > 60 { format!("{}…", s.chars().take(60).collect::<String>()) } else { s }
}

impl<'a> Fields<'a> {
    /// `value` must be an object (or null, read as empty) whose keys are all in `known`.
    pub fn new(value: &'a Value, prefix: &str, known: &[&str]) -> Result<Self> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        let map = match value {
            Value::Object(m) => m,
            Value::Null => EMPTY.get_or_init(Map::new),
            other => {
                let field = if prefix.is_empty() { "config" } else { prefix };
                return Err(Error::config(field, format!("must be an object, got {}", quote(other))));
            }
        };
        let fields = Fields { map, prefix: prefix.to_string() };
        if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Error::config(
                fields.name(key),
                format!("is not a known option (known: {})", known.join(", ")),
            ));
        }
        Ok(fields)
    }

    pub fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}.{}", self.prefix, key) }
    }

    fn present(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn number(&self, key: &str, default: f64, min: f64, max: f64) -> Result<f64> {
        let Some(v) = self.present(key) else { return Ok(default) };
        let x = v
            .as_f64()
            .ok_or_else(|| Error::config(self.name(key), format!("must be a number, got {}", quote(v))))?;
        if !x.is_finite() || x < min || x > max {
            return Err(Error::config(self.name(key), format!("must be between {min} and {max}, got {x}")));
        }
        Ok(x)
    }

    /// Positive numbers (learning rates, temperatures): zero is not allowed.
    pub fn positive(&self, key: &str, default: f64, max: f64) -> Result<f64> {
        let x = self.number(key, default, 0.0, max)?;
        if x <= 0.0 {
            return Err(Error::config(self.name(key), format!("must be greater than 0, got {x}")));
        }
        Ok(x)
    }

    pub fn integer(&self, key: &str, default: i64, min: i64, max: i64) -> Result<i64> {
        let Some(v) = self.present(key) else { return Ok(default) };
        let x = v
            .as_f64()
            .ok_or_else(|| Error::config(self.name(key), format!("must be an integer, got {}", quote(v))))?;
        if !x.is_finite() || x.fract() != 0.0 {
            return Err(Error::config(self.name(key), format!("must be an integer, got {}", quote(v))));
        }
        if x < min as f64 || x > max as f64 {
            return Err(Error::config(self.name(key), format!("must be between {min} and {max}, got {}", quote(v))));
        }
        Ok(x as i64)
    }

    pub fn optional_integer(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
        match self.present(key) {
            None => Ok(None),
            Some(_) => self.integer(key, 0, min, max).map(Some),
        }
    }

    pub fn string(&self, key: &str, default: &str, allowed: Option<&[&str]>) -> Result<String> {
        let Some(v) = self.present(key) else { return Ok(default.to_string()) };
        let s = v
            .as_str()
            .ok_or_else(|| Error::config(self.name(key), format!("must be a string, got {}", quote(v))))?;
        if let Some(allowed) = allowed {
            if !allowed.contains(&s) {
                return Err(Error::config(
                    self.name(key),
                    format!("must be one of {}, got {}", allowed.join(", "), quote(v)),
                ));
            }
        }
        Ok(s.to_string())
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.present(key)
    }
}
