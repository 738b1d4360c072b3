//! Port indicators: the Network's quantitative benchmark. Port communities submit values, the
//! secretariat validates them, and only validated values are public.

pub mod routes;
pub mod service;
