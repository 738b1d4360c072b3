//! The directory of the Network: member organizations and their contacts, managed by the
//! secretariat; public contacts are shown in the public area.

pub mod dto;
pub mod routes;
pub mod service;
