//! One integration-test binary (fast to link), a module per area.

mod helpers;
mod smtp;
mod tasks;
mod ws;

mod admin;
mod auth;
mod bodies;
mod cli;
mod cluster;
mod committees;
mod database;
mod documents;
mod errors;
mod group_commit;
mod health;
mod mail;
mod meetings;
mod public;
mod realtime;
