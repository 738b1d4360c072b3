//! dcports: the backend of the D&C Ports Network portal.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod committees;
pub mod db;
pub mod directory;
pub mod documents;
pub mod domain;
pub mod error;
pub mod events;
pub mod group_commit;
pub mod indicators;
pub mod input;
pub mod mail;
pub mod meetings;
pub mod methods;
pub mod openapi;
pub mod pagination;
pub mod preconditions;
pub mod public;
pub mod realtime;
pub mod reference;
pub mod scheduler;
pub mod search;
pub mod seed;
pub mod settings;
pub mod startup;
pub mod state;
pub mod storage;
pub mod tasks;
pub mod telemetry;
#[cfg(test)]
mod test_support;
