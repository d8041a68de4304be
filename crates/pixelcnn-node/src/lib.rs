//! Node-API binding of `pixelcnn-core`: converts types and errors, runs long
//! work off the JS thread, and nothing else. Model logic lives in the core.

mod cancel;
mod errors;
mod images;
mod info;
mod model;
mod progress;
