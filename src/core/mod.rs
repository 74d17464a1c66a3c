//! The pure core: everything joingate decides, with no JavaScript calls, so that all of it is
//! tested natively with `cargo test`. The edge modules only move bytes in and out. One
//! exception: in the wasm build [`url::parse`] uses the runtime's WHATWG `URL` (the size
//! budget); natively it is the `url` crate's implementation of the same standard.

pub mod backend;
pub mod base64;
pub mod book;
pub mod breaker;
pub mod dispatch;
pub mod envelope;
pub mod error;
pub mod idempotency;
pub mod ids;
pub mod invite;
pub mod job_views;
pub mod jobs;
pub mod json;
pub mod jwt;
pub mod limits;
pub mod lists;
pub mod membership;
pub mod orgs;
pub mod pipeline;
pub mod policy;
pub mod protection;
pub mod queue;
pub mod ratelimit;
pub mod requests;
pub mod route;
pub mod throttle;
pub mod time;
pub mod token;
pub mod url;
pub mod webhooks;
