//! A real WebSocket client (tokio-tungstenite) speaking the dcports protocol.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;

const WAIT: Duration = Duration::from_secs(10);

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended, as seen by the client.
#[derive(Debug)]
pub enum Ended {
    Closed(Option<CloseFrame>),
    Dropped,
}

impl WsClient {
    pub async fn connect(app: &TestApp) -> Self {
        Self::connect_to(&app.address).await
    }

    /// Connects to the node at `address` (`http://host:port`).
    pub async fn connect_to(address: &str) -> Self {
        let url = address.replace("http://", "ws://") + "/ws";
        let (stream, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        Self { stream }
    }

    /// Connects and authenticates; returns the client and its `ready` frame.
    pub async fn authenticated(app: &TestApp, token: &str) -> (Self, Value) {
        Self::authenticated_at(&app.address, token).await
    }

    /// Connects to the node at `address` and authenticates.
    pub async fn authenticated_at(address: &str, token: &str) -> (Self, Value) {
        let mut client = Self::connect_to(address).await;
        client.send(json!({ "type": "auth", "token": token })).await;
        let ready = client.next_of_type("ready").await;
        (client, ready)
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(Message::text(frame.to_string()))
            .await
            .expect("frame sent");
    }

    /// Sends `frames` in one write, so that the server reads them all before it answers any.
    pub async fn send_together(&mut self, frames: &[&Value]) {
        for frame in frames {
            self.stream
                .feed(Message::text(frame.to_string()))
                .await
                .expect("frame queued");
        }
        self.stream.flush().await.expect("frames sent");
    }

    pub async fn send_raw(&mut self, message: Message) -> bool {
        self.stream.send(message).await.is_ok()
    }

    /// The next JSON frame, skipping presence frames.
    /// Writes bytes straight to the socket, framed or not; false once the server has closed it.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> bool {
        use tokio::io::AsyncWriteExt;
        match self.stream.get_mut() {
            MaybeTlsStream::Plain(tcp) => tcp.write_all(bytes).await.is_ok(),
            _ => unreachable!("the tests speak plain ws://"),
        }
    }

    pub async fn next(&mut self) -> Value {
        loop {
            let frame = self.next_any().await;
            if frame["type"] != "presence" {
                return frame;
            }
        }
    }

    /// The next JSON frame of any type. The wait is for the frame, not for each message: the
    /// server's pings every 10 s must not keep a test waiting for a frame that never comes.
    pub async fn next_any(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("a frame within the wait")
                .expect("the socket is open")
                .expect("a valid frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
                Message::Close(frame) => panic!("socket closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(frame["type"], kind, "expected a {kind} frame, got {frame}");
        frame
    }

    /// Subscribes; returns the replayed events and the offset of the `subscribed` frame.
    pub async fn subscribe(&mut self, channel: &str, after: Option<i64>) -> (Vec<Value>, i64) {
        let mut frame = json!({ "type": "subscribe", "channel": channel });
        if let Some(after) = after {
            frame["after"] = json!(after);
        }
        self.send(frame).await;
        let mut events = Vec::new();
        loop {
            let frame = self.next().await;
            match frame["type"].as_str() {
                Some("event") => events.push(frame),
                Some("subscribed") => return (events, frame["offset"].as_i64().unwrap()),
                _ => panic!("unexpected frame while subscribing to {channel}: {frame}"),
            }
        }
    }

    /// The next `event` frame.
    pub async fn next_event(&mut self) -> Value {
        self.next_of_type("event").await
    }

    /// Reads until the server ends the socket, ignoring frames before; within one wait, however
    /// many pings come meanwhile.
    pub async fn ended(&mut self) -> Ended {
        let deadline = tokio::time::Instant::now() + WAIT * 6;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("the socket ends in time")
            {
                Some(Ok(Message::Close(frame))) => return Ended::Closed(frame),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ended::Dropped,
            }
        }
    }

    /// Reads frames until the server closes, returning those frames and the close code.
    pub async fn frames_until_close(&mut self) -> (Vec<Value>, Option<u16>) {
        let deadline = tokio::time::Instant::now() + WAIT * 6;
        let mut frames = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("the socket ends in time")
            {
                Some(Ok(Message::Text(text))) => frames.push(serde_json::from_str(&text).unwrap_or(Value::Null)),
                Some(Ok(Message::Close(frame))) => return (frames, frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return (frames, None),
            }
        }
    }
}

impl WsClient {
    /// What arrived after the close frame, if anything: nothing may follow one (RFC 6455
    /// §5.5.1), and tungstenite reports a frame that does as an error.
    pub async fn after_close(&mut self) -> Option<String> {
        use tokio_tungstenite::tungstenite::Error;
        match tokio::time::timeout(WAIT, self.stream.next())
            .await
            .expect("the socket ends in time")
        {
            None | Some(Err(Error::ConnectionClosed | Error::AlreadyClosed)) => None,
            Some(Ok(message)) => Some(format!("{message:?}")),
            Some(Err(error)) => Some(error.to_string()),
        }
    }
}

pub fn close_code(ended: &Ended) -> Option<u16> {
    match ended {
        Ended::Closed(Some(frame)) => Some(u16::from(frame.code)),
        _ => None,
    }
}
