//! Core errors → JS errors whose `code` property is the core's stable code
//! (`InvalidConfig`, `Checkpoint`, …): `src/errors.ts` picks the typed class
//! from `code`, never from the message. Panics are caught here too: nothing
//! unwinds into Node.
//!
//! napi-rs sets `code` from an error's status, and its `Status` is a fixed
//! enum; so the JS error object is built here, on the JS thread, with our
//! code set, and handed back as the rejection value.

use napi::bindgen_prelude::{JsObjectValue, JsValue};
use napi::{Env, Status};
use pixelcnn_core::Error;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// An error on its way to JavaScript: computed on any thread, thrown on the JS one.
#[derive(Debug)]
pub struct Coded {
    pub code: &'static str,
    pub message: String,
}

impl From<Error> for Coded {
    fn from(error: Error) -> Self {
        Coded { code: error.code(), message: error.to_string() }
    }
}

impl Coded {
    pub fn busy(what: &str) -> Self {
        Coded { code: "Busy", message: format!("the model is in use by another call ({what} cannot run until it finishes)") }
    }

    /// The JS `Error` with `code` set, as a napi error that rejects or throws with it.
    pub fn into_napi(self, env: &Env) -> napi::Error {
        let built = (|| -> napi::Result<napi::Error> {
            let mut object = env.create_error(napi::Error::new(Status::GenericFailure, &self.message))?;
            object.set_named_property("code", self.code)?;
            Ok(napi::Error::from(object.to_unknown()))
        })();
        built.unwrap_or_else(|e| e)
    }
}

pub type CodedResult<T> = std::result::Result<T, Coded>;

/// Runs core work, turning both its errors and any panic into a `Coded` error.
pub fn guard<T>(f: impl FnOnce() -> pixelcnn_core::Result<T>) -> CodedResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(Coded::from),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(Coded { code: "Internal", message: format!("internal error: native panic caught at the boundary: {what}") })
        }
    }
}

/// `guard` for synchronous calls: throws on the JS thread.
pub fn guard_sync<T>(env: &Env, f: impl FnOnce() -> pixelcnn_core::Result<T>) -> napi::Result<T> {
    guard(f).map_err(|e| e.into_napi(env))
}

pub fn parse_json(text: &str, what: &str) -> pixelcnn_core::Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| Error::config(what, format!("is not valid JSON: {e}")))
}
