//! dcports: the backend of the D&C Ports Network portal.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod committees;
pub mod db;
pub mod domain;
pub mod error;
pub mod mail;
pub mod openapi;
pub mod pagination;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
