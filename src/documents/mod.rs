//! Shared documents: upload, versions, live sharing across committees, and the reviewed path to
//! the public area.

pub mod download;
pub mod dto;
pub mod routes;
pub mod service;
pub mod upload;
