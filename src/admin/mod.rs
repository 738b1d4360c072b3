//! Secretariat administration: accounts and the audit log. Committees are administered from
//! their own area (`committees`).

pub mod dto;
pub mod routes;
pub mod service;
