//! Committees and their memberships: who sees and does what in the workspace.

pub mod dto;
pub mod routes;
pub mod service;
