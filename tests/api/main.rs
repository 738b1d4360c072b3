//! One integration-test binary (fast to link), a module per area.

mod helpers;
mod smtp;

mod admin;
mod auth;
mod errors;
mod health;
mod mail;
