//! Cooperative cancellation. napi's own AsyncTask abort only stops work that
//! has not started; a `CancelToken` reaches work that is running: the
//! TypeScript layer calls `cancel()` when the user's `AbortSignal` fires, and
//! the core checks the flag between training steps and sampled rows.

use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[napi]
#[derive(Default)]
pub struct CancelToken {
    pub(crate) flag: Arc<AtomicBool>,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    #[napi]
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}
