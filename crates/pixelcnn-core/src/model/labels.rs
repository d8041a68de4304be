//! Class labels of a conditional model: one integer in 0..classes per image,
//! given as one value for every image or as a list with one per image.

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

/// Checks labels against the model and the image count: present exactly
/// when the model is conditional, one per image, each in 0..classes.
/// Returns one label per image, or `None` for an unconditional model.
pub fn check(labels: Option<Labels>, config: &ModelConfig, count: i64, field: &str) -> Result<Option<Vec<i64>>> {
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
    match labels {
        Labels::All(k) => Ok(Some(vec![in_range(k, field.to_string())?; count as usize])),
        Labels::Each(list) => {
            if list.len() as i64 != count {
                return Err(Error::config(field, format!("has {} labels but there are {count} images (give one per image)", list.len())));
            }
            list.iter().enumerate().map(|(i, &k)| in_range(k, format!("{field}[{i}]"))).collect::<Result<Vec<_>>>().map(Some)
        }
    }
}

/// `from_json` then `check`.
pub fn resolve(value: Option<&Value>, config: &ModelConfig, count: i64, field: &str) -> Result<Option<Vec<i64>>> {
    check(from_json(value, field)?, config, count, field)
}

/// `labels[start..start+len]` as an int64 tensor on `device`, or `None`.
pub fn batch(labels: Option<&[i64]>, start: i64, len: i64, device: Device) -> Result<Option<Tensor>> {
    match labels {
        Some(all) => Ok(Some(Tensor::f_from_slice(&all[start as usize..(start + len) as usize])?.f_to_device(device)?)),
        None => Ok(None),
    }
}
