//! Named training recipes: the published hyperparameters in one word.
//! `recipe: NAME` fills in every field the recipe sets that the config
//! leaves out; fields given explicitly win. The name stays in the config
//! (and so in the checkpoint's record of how the model was trained).

use crate::error::{Error, Result};
use serde_json::{json, Value};

/// (name, what it reproduces, its fields).
fn recipes() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "seed",
            "the Keras PixelCNN this project started from: Adam 5e-4 (ε 1e-7), batch 128, 50 epochs, constant rate",
            json!({ "epochs": 50, "batchSize": 128, "learningRate": 5e-4, "betas": [0.9, 0.999], "eps": 1e-7, "schedule": { "type": "constant" } }),
        ),
        (
            "pixelcnn++-cifar10",
            "PixelCNN++ on CIFAR-10 (openai/pixel-cnn): Adam 1e-3 with β 0.95/0.9995, ε 1e-8, ×0.999995 per step, Polyak average 0.9995, batch 16 per GPU (dropout 0.5 is the pixelcnn++ network's default)",
            json!({
                "learningRate": 1e-3, "batchSize": 16, "betas": [0.95, 0.9995], "eps": 1e-8,
                "schedule": { "type": "exponential", "decay": 0.999995 }, "ema": 0.9995,
            }),
        ),
    ]
}

/// The recipes' names and descriptions, for help texts.
pub fn list() -> Vec<(&'static str, &'static str)> {
    recipes().into_iter().map(|(name, about, _)| (name, about)).collect()
}

/// `value` with its recipe's fields filled in where it has none.
pub fn complete(value: &Value) -> Result<Value> {
    let Some(name) = value.get("recipe").filter(|v| !v.is_null()) else { return Ok(value.clone()) };
    let known = || recipes().iter().map(|(n, _, _)| format!("{n:?}")).collect::<Vec<_>>().join(", ");
    let name = name.as_str().ok_or_else(|| Error::config("recipe", format!("must be a recipe's name ({}), got {name}", known())))?;
    let (_, _, fields) = recipes()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| Error::config("recipe", format!("is not a known recipe: {name:?} (known: {})", known())))?;
    let mut completed = value.clone();
    let object = completed.as_object_mut().ok_or_else(|| Error::config("", "must be an object"))?;
    for (key, v) in fields.as_object().expect("recipes are objects") {
        if object.get(key).is_none_or(Value::is_null) {
            object.insert(key.clone(), v.clone());
        }
    }
    Ok(completed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_fields_win_and_unknown_names_are_refused() {
        let c = complete(&json!({ "recipe": "pixelcnn++-cifar10", "batchSize": 4 })).unwrap();
        assert_eq!(c["batchSize"], 4);
        assert_eq!(c["ema"], 0.9995);
        let err = complete(&json!({ "recipe": "fast" })).unwrap_err().to_string();
        assert!(err.contains("`recipe`") && err.contains("\"fast\"") && err.contains("pixelcnn++-cifar10"), "{err}");
    }
}
