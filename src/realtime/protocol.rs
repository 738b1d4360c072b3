//! The frames of the WebSocket protocol (API.md, "WebSocket").

use bytestring::ByteString;
use serde::{Deserialize, Serialize};

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Auth { token: String },
    Subscribe { channel: String, after: Option<i64> },
    Unsubscribe { channel: String },
}

/// What the server sends, other than events (which are pre-serialized by the broker).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Ready {
        member_id: i32,
        channels: &'a [String],
    },
    Subscribed {
        channel: &'a str,
        offset: i64,
    },
    Unsubscribed {
        channel: &'a str,
        reason: &'a str,
    },
    Reset {
        channel: &'a str,
    },
    Presence {
        channel: &'a str,
        online: &'a [i32],
    },
    Error {
        code: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        channel: Option<&'a str>,
        message: &'a str,
    },
}

impl ServerFrame<'_> {
    pub fn to_text(&self) -> ByteString {
        // Serializing these plain structs cannot fail; an empty frame would only be a bug.
        ByteString::from(serde_json::to_string(self).unwrap_or_default())
    }
}
