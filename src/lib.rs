//! joingate: a Cloudflare Worker that joins WhatsApp groups through one API, in front of a
//! session backend.
//!
//! `core` holds every decision as plain Rust (tested natively); `edge` is the thin shell that
//! talks to the Workers runtime: the fetch handler, KV, the session Durable Object and the
//! backend client.

pub mod core;
mod edge;

pub use edge::org::OrgObject;
pub use edge::session::SessionObject;
