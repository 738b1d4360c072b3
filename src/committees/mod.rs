//! Committees and their memberships.

pub mod service;
