//! The public area: anonymous, read-only, served only from data explicitly published.

pub mod routes;
