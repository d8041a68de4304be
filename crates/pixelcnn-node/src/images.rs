//! `ImageBatch` objects from JS, copied once into owned bytes so that the
//! work can move to another thread.

use napi::bindgen_prelude::Uint8Array;
use napi_derive::napi;
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::Error;

#[napi(object)]
pub struct ImageBatch {
    pub count: f64,
    pub height: f64,
    pub width: f64,
    pub channels: f64,
    pub data: Uint8Array,
}

pub struct OwnedImages {
    pub count: i64,
    pub height: i64,
    pub width: i64,
    pub channels: i64,
    pub data: Vec<u8>,
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
            data: batch.data.to_vec(),
        })
    }

    pub fn as_ref(&self) -> ImagesRef<'_> {
        ImagesRef { count: self.count, height: self.height, width: self.width, channels: self.channels, data: &self.data }
    }
}
