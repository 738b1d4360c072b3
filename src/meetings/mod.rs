//! Meetings and their agendas: allocation guidelines, attendance, live meeting mode, minutes,
//! calendars and reminders.

pub mod calendar;
pub mod dto;
pub mod live;
pub mod routes;
pub mod service;
