//! Tasks of a committee: a board with statuses, priorities, assignees, due dates and comments.

pub mod dto;
pub mod routes;
pub mod service;
