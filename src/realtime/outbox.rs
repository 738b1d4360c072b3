//! The `Outbox`: frames the Broker has routed to one session and the session has not yet taken.
//!
//! The Broker does not send one actor message per frame. It appends to the session's outbox and
//! wakes the session only when the outbox was empty; the session then takes everything queued at
//! once and writes it in one go. A session that keeps up costs one wake per event, as before; a
//! session that falls behind (a burst of events, a busy worker thread) gets its frames in batches,
//! one wake and one socket write for many frames, which is where fan-out throughput comes from.
//! The byte count bounds what a client that stops reading can make the server hold.

use std::sync::{Arc, Mutex, MutexGuard};

use bytestring::ByteString;

/// A frame for a channel: an event (with its offset) or presence (without).
#[derive(Clone)]
pub struct Delivery {
    pub channel: Arc<str>,
    pub offset: Option<i64>,
    pub frame: ByteString,
    /// The member the event removes from the channel's committee: that member's subscription
    /// ends right after it ([`crate::events::EventFrame::removed_member`]).
    pub removes: Option<i32>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued behind frames the session has already been woken for.
    Queued,
    /// Queued into an empty outbox: the session must be woken to take it.
    Wake,
    /// Not queued: the session already holds more than the bound and must be cut off.
    Full,
}

#[derive(Default)]
pub struct Outbox {
    inner: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    deliveries: Vec<Delivery>,
    bytes: usize,
}

impl Outbox {
    pub fn push(&self, delivery: Delivery, max_bytes: usize) -> Pushed {
        let mut queue = self.lock();
        let bytes = queue.bytes + delivery.frame.len();
        if bytes > max_bytes {
            return Pushed::Full;
        }
        queue.bytes = bytes;
        queue.deliveries.push(delivery);
        match queue.deliveries.len() {
            1 => Pushed::Wake,
            _ => Pushed::Queued,
        }
    }

    /// Everything queued, oldest first; the next push wakes the session again.
    pub fn take(&self) -> Vec<Delivery> {
        let mut queue = self.lock();
        queue.bytes = 0;
        std::mem::take(&mut queue.deliveries)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The lock guards plain data and no code that can panic holds it; a poisoned lock still
        // holds a consistent queue.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(offset: i64, text: &str) -> Delivery {
        Delivery {
            channel: Arc::from("committee:1"),
            offset: Some(offset),
            frame: ByteString::from(text.to_owned()),
            removes: None,
        }
    }

    #[test]
    fn wakes_once_per_batch_and_keeps_order() {
        let outbox = Outbox::default();
        assert_eq!(outbox.push(delivery(1, "a"), 100), Pushed::Wake);
        assert_eq!(outbox.push(delivery(2, "b"), 100), Pushed::Queued);
        assert_eq!(outbox.push(delivery(3, "c"), 100), Pushed::Queued);
        let offsets: Vec<_> = outbox.take().iter().map(|d| d.offset).collect();
        assert_eq!(offsets, [Some(1), Some(2), Some(3)]);
        assert!(outbox.take().is_empty());
        assert_eq!(outbox.push(delivery(4, "d"), 100), Pushed::Wake);
    }

    #[test]
    fn refuses_past_the_byte_bound_until_taken() {
        let outbox = Outbox::default();
        assert_eq!(outbox.push(delivery(1, "12345"), 8), Pushed::Wake);
        assert_eq!(outbox.push(delivery(2, "12345"), 8), Pushed::Full);
        assert_eq!(outbox.push(delivery(3, "123"), 8), Pushed::Queued);
        assert_eq!(outbox.take().len(), 2);
        assert_eq!(outbox.push(delivery(4, "12345"), 8), Pushed::Wake);
    }
}
