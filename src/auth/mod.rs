//! Authentication: passwords, tokens, sessions, and the caller's own account (`/api/me`).

pub mod dto;
pub mod extract;
pub mod password;
pub mod routes;
pub mod service;
pub mod throttle;
pub mod tokens;

pub use extract::{CallerToken, ClientIp, CurrentMember, Secretariat, authorize_in};
