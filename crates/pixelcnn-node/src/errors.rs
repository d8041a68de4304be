//! Core errors → JS errors. The message carries the stable code as a prefix,
//! `[pixelcnn:Code] message`, which `src/errors.ts` turns into a typed class.
//! Panics are caught here too: nothing unwinds into Node.

use pixelcnn_core::Error;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub fn to_napi(error: Error) -> napi::Error {
    napi::Error::from_reason(format!("[pixelcnn:{}] {}", error.code(), error))
}

pub fn busy(what: &str) -> napi::Error {
    napi::Error::from_reason(format!(
        "[pixelcnn:Busy] the model is in use by another call ({what} cannot run until it finishes)"
    ))
}

/// Runs core work, turning both its errors and any panic into a JS error.
pub fn guard<T>(f: impl FnOnce() -> pixelcnn_core::Result<T>) -> napi::Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(to_napi),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(napi::Error::from_reason(format!("[pixelcnn:Internal] native panic caught at the boundary: {what}")))
        }
    }
}

pub fn parse_json(text: &str, what: &str) -> napi::Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| to_napi(Error::config(what, format!("is not valid JSON: {e}"))))
}
