//! The public area: anonymous, read-only (GET and HEAD), served only from data explicitly
//! published, cacheable, and rate limited per client address.

pub mod cache;
pub mod data;
pub mod guard;
pub mod pages;
pub mod routes;
