//! What a conditional model is conditioned on: class labels (one integer in
//! 0..classes per image, given as one value for every image or as a list with
//! one per image), or for a model with `conditionSize: D` a real vector of D
//! values per image (N×D, row-major).

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::parse::quote;
use serde_json::Value;
use tch::{Device, Tensor};

/// Labels as the user gave them, before they are checked against a model.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    /// One class for every image.
    All(i64),
    /// One class per image.
    Each(Vec<i64>),
    /// One condition vector per image, N×D values.
    Vectors(Vec<f32>),
}

/// Checked conditions, one per image: what `batch` slices.
#[derive(Clone, Debug, PartialEq)]
pub enum Conditions {
    Classes(Vec<i64>),
    /// N×`size` values.
    Vectors { values: Vec<f32>, size: i64 },
}

/// The argument that holds condition vectors where `field` holds labels:
/// `labels` → `conditions`, `data.trainLabels` → `data.trainConditions`.
pub fn vectors_field(field: &str) -> String {
    field.replace("labels", "conditions").replace("Labels", "Conditions")
}

/// Condition values of a model with `conditionSize` D and/or `conditionMap`
/// (M = C×H×W values): N×(D + M) finite values, each image's vector then its
/// map; a token map's values whole tokens of its vocabulary.
fn check_vectors(values: Vec<f32>, config: &ModelConfig, count: i64, field: &str) -> Result<Conditions> {
    let field = vectors_field(field);
    let d = config.condition_size.unwrap_or(0);
    let size = config.condition_values().unwrap_or(0);
    if values.len() as i64 != count * size {
        let what = match (&config.condition_map, d) {
            (Some(m), 0) => format!("a map of {}×{}×{}", m.channels, m.height, m.width),
            (Some(m), d) => format!("(conditionSize {d} + a map of {}×{}×{})", m.channels, m.height, m.width),
            (None, d) => format!("conditionSize {d}"),
        };
        return Err(Error::config(&field, format!("has {} values but {count} images × {what} = {}", values.len(), count * size)));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::config(format!("{field}[{i}]"), format!("is {} (image {}, component {}): conditions must be finite", values[i], i as i64 / size, i as i64 % size)));
    }
    if let Some(v) = config.condition_map.as_ref().and_then(|m| m.vocabulary) {
        let token = |x: f32| x.fract() == 0.0 && x >= 0.0 && (x as i64) < v;
        if let Some(i) = (0..values.len()).find(|&i| i as i64 % size >= d && !token(values[i])) {
            return Err(Error::config(format!("{field}[{i}]"), format!("is {} (image {}, map position {}): a token map takes whole tokens 0 … {}", values[i], i as i64 / size, i as i64 % size - d, v - 1)));
        }
    }
    Ok(Conditions::Vectors { values, size })
}

fn integer(v: &Value, at: &str) -> Result<i64> {
    v.as_f64()
        .filter(|x| x.fract() == 0.0 && x.is_finite() && x.abs() < 9.0e15)
        .map(|x| x as i64)
        .ok_or_else(|| Error::config(at, format!("must be an integer class, got {}", quote(v))))
}

/// A JSON integer or array of integers (null: none).
pub fn from_json(value: Option<&Value>, field: &str) -> Result<Option<Labels>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            items.iter().enumerate().map(|(i, v)| integer(v, &format!("{field}[{i}]"))).collect::<Result<Vec<_>>>().map(|l| Some(Labels::Each(l)))
        }
        Some(v) => integer(v, field).map(|k| Some(Labels::All(k))),
    }
}

/// Checks labels (or condition vectors) against the model and the image
/// count: present exactly when the model is conditional, of its kind, one per
/// image, each class in 0..classes. Returns them, or `None` for an
/// unconditional model.
pub fn check(labels: Option<Labels>, config: &ModelConfig, count: i64, field: &str) -> Result<Option<Conditions>> {
    if let Some(size) = config.condition_values() {
        return match labels {
            Some(Labels::Vectors(values)) => check_vectors(values, config, count, field).map(Some),
            Some(_) => Err(Error::config(field, format!("was given but the model is conditional on vectors and maps of {size} values (give {} instead)", vectors_field(field)))),
            None => Err(Error::config(vectors_field(field), format!("is required: the model is conditional on {size} values per image (its vector, then its map)"))),
        };
    }
    if let Some(Labels::Vectors(_)) = labels {
        return Err(Error::config(vectors_field(field), "was given but the model takes no condition vectors (create it with `conditionSize` or `conditionMap` for that)"));
    }
    let Some(classes) = config.classes else {
        return match labels {
            None => Ok(None),
            Some(_) => Err(Error::config(field, "was given but the model is unconditional (create it with `classes` to condition on labels)")),
        };
    };
    let Some(labels) = labels else {
        return Err(Error::config(field, format!("is required: the model is conditional on {classes} classes")));
    };
    let in_range = |k: i64, at: String| -> Result<i64> {
        if (0..classes).contains(&k) {
            Ok(k)
        } else {
            Err(Error::config(at, format!("is {k} but the model has {classes} classes (0 to {})", classes - 1)))
        }
    };
    let classes = match labels {
        Labels::All(k) => vec![in_range(k, field.to_string())?; count as usize],
        Labels::Each(list) => {
            if list.len() as i64 != count {
                return Err(Error::config(field, format!("has {} labels but there are {count} images (give one per image)", list.len())));
            }
            list.iter().enumerate().map(|(i, &k)| in_range(k, format!("{field}[{i}]"))).collect::<Result<Vec<_>>>()?
        }
        Labels::Vectors(_) => unreachable!("refused above"),
    };
    Ok(Some(Conditions::Classes(classes)))
}

/// `from_json` (or `vectors`, condition vectors given beside the JSON) then `check`.
pub fn resolve(value: Option<&Value>, vectors: Option<&[f32]>, config: &ModelConfig, count: i64, field: &str) -> Result<Option<Conditions>> {
    let labels = from_json(value, field)?;
    let given = match (labels, vectors) {
        (Some(_), Some(_)) => return Err(Error::config(field, format!("and {} exclude each other: give the one the model takes", vectors_field(field)))),
        (Some(l), None) => Some(l),
        (None, Some(v)) => Some(Labels::Vectors(v.to_vec())),
        (None, None) => None,
    };
    check(given, config, count, field)
}

/// Images start … start+len − 1's conditions on `device`: (len,) int64
/// classes or (len, D) float vectors (`ClassBias::rows` takes either), or `None`.
pub fn batch(conditions: Option<&Conditions>, start: i64, len: i64, device: Device) -> Result<Option<Tensor>> {
    let range = start as usize..(start + len) as usize;
    Ok(match conditions {
        Some(Conditions::Classes(all)) => Some(Tensor::f_from_slice(&all[range])?.f_to_device(device)?),
        Some(Conditions::Vectors { values, size }) => {
            let d = *size as usize;
            Some(Tensor::f_from_slice(&values[range.start * d..range.end * d])?.f_reshape([len, *size])?.f_to_device(device)?)
        }
        None => None,
    })
}
