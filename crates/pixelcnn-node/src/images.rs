//! `ImageBatch` objects from JS, copied once into owned values so that the
//! work can move to another thread.

use napi::bindgen_prelude::{Int32Array, Uint8Array};
use napi_derive::napi;
use pixelcnn_core::images::{ImagesRef, Values};
use pixelcnn_core::Error;

/// Pixels in `data` (bytes), or a token grid's tokens in `tokens`: exactly one of the two.
#[napi(object)]
pub struct ImageBatch {
    pub count: f64,
    pub height: f64,
    pub width: f64,
    pub channels: f64,
    pub data: Option<Uint8Array>,
    pub tokens: Option<Int32Array>,
}

pub enum OwnedValues {
    Bytes(Vec<u8>),
    Tokens(Vec<i32>),
}

pub struct OwnedImages {
    pub count: i64,
    pub height: i64,
    pub width: i64,
    pub channels: i64,
    pub data: OwnedValues,
}

impl OwnedValues {
    pub fn as_values(&self) -> Values<'_> {
        match self {
            OwnedValues::Bytes(b) => Values::Bytes(b),
            OwnedValues::Tokens(t) => Values::Tokens(t),
        }
    }
}

fn dimension(value: f64, field: &str, what: &str) -> pixelcnn_core::Result<i64> {
    if value.is_finite() && value.fract() == 0.0 && (0.0..=1e9).contains(&value) {
        Ok(value as i64)
    } else {
        Err(Error::InvalidData(format!("{what}.{field} must be a non-negative integer, got {value}")))
    }
}

impl OwnedImages {
    pub fn from_js(batch: &ImageBatch, what: &str) -> pixelcnn_core::Result<Self> {
        Ok(OwnedImages {
            count: dimension(batch.count, "count", what)?,
            height: dimension(batch.height, "height", what)?,
            width: dimension(batch.width, "width", what)?,
            channels: dimension(batch.channels, "channels", what)?,
            data: match (&batch.data, &batch.tokens) {
                (Some(bytes), None) => OwnedValues::Bytes(bytes.to_vec()),
                (None, Some(tokens)) => OwnedValues::Tokens(tokens.to_vec()),
                _ => return Err(Error::InvalidData(format!("{what}: give either data (image bytes) or tokens (a token grid), exactly one"))),
            },
        })
    }

    pub fn as_ref(&self) -> ImagesRef<'_> {
        ImagesRef { count: self.count, height: self.height, width: self.width, channels: self.channels, data: self.data.as_values() }
    }
}
