//! Progress events to JS through a thread-safe function, non-blocking and at
//! most a few times a second: a slow listener never slows the work down.

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use std::time::{Duration, Instant};

/// JS receives one JSON string per event; `src/` parses it into a tagged union.
pub type ProgressCallback = ThreadsafeFunction<String, (), String, Status, false, true>;

const MIN_INTERVAL: Duration = Duration::from_millis(100);

pub struct Progress {
    callback: Option<ProgressCallback>,
    last: Option<Instant>,
}

impl Progress {
    pub fn new(callback: Option<ProgressCallback>) -> Self {
        Progress { callback, last: None }
    }

    /// `important` events (epoch ends) are always sent; others are throttled.
    pub fn send(&mut self, important: bool, event: impl FnOnce() -> serde_json::Value) {
        let Some(callback) = &self.callback else { return };
        let now = Instant::now();
        if !important && self.last.is_some_and(|t| now.duration_since(t) < MIN_INTERVAL) {
            return;
        }
        self.last = Some(now);
        callback.call(event().to_string(), ThreadsafeFunctionCallMode::NonBlocking);
    }
}
