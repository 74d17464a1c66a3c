//! The shell around the core: everything that calls into the Workers runtime.

mod admin;
mod auth;
mod backend_client;
mod config;
mod crypto;
mod jwt;
pub mod org;
mod reply;
pub mod session;
mod store;
mod worker;
