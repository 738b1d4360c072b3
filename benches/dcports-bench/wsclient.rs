//! A minimal WebSocket client (RFC 6455) for the benchmark's subscribers.
//!
//! The subscribers share the machine's two cores with the server they measure, so each one
//! must cost as little as the raw ceiling's readers do: one read into a buffer the client keeps,
//! frames parsed in place, nothing allocated per frame. A general client such as tungstenite
//! copies every payload into a message of its own and polls through a waker proxy; with a
//! thousand subscribers that was most of the client's share of the machine (BENCHMARKS.md).
//! What it does not need, it does not do: no fragmented or compressed frames (the servers under
//! test send neither), no TLS.

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct WsClient {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// `buffer[start..end]` holds what was read and not yet parsed.
    start: usize,
    end: usize,
}

/// A frame from the server.
pub enum Frame<'a> {
    Text(&'a str),
    Close,
}

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_CLOSE: u8 = 0x8;
const OPCODE_PING: u8 = 0x9;
const OPCODE_PONG: u8 = 0xA;

impl WsClient {
    /// Connects to `ws://host:port/path` and completes the opening handshake.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let rest = url.strip_prefix("ws://").context("only ws:// URLs")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let mut stream = TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut client = Self {
            stream,
            buffer: vec![0; 4096],
            start: 0,
            end: 0,
        };
        let head_end = loop {
            if let Some(at) = client.unparsed().windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            client.fill().await?;
        };
        let head = String::from_utf8_lossy(&client.unparsed()[..head_end]).into_owned();
        anyhow::ensure!(
            head.starts_with("HTTP/1.1 101"),
            "the server refused the upgrade: {}",
            head.lines().next().unwrap_or_default()
        );
        client.start += head_end;
        Ok(client)
    }

    /// Sends one text frame, masked as a client must.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.send(OPCODE_TEXT, text.as_bytes()).await
    }

    /// The next text or close frame; answers pings on the way.
    pub async fn next(&mut self) -> anyhow::Result<Frame<'_>> {
        loop {
            match self.parse_header()? {
                None => self.fill().await?,
                Some((opcode, header, len)) => {
                    let payload = self.start + header..self.start + header + len;
                    self.start = payload.end;
                    match opcode {
                        OPCODE_TEXT => {
                            let text = std::str::from_utf8(&self.buffer[payload]).context("text frame not UTF-8")?;
                            return Ok(Frame::Text(text));
                        }
                        OPCODE_CLOSE => return Ok(Frame::Close),
                        OPCODE_PING => {
                            let payload = self.buffer[payload].to_vec();
                            self.send(OPCODE_PONG, &payload).await?;
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// The opcode, header length and payload length of the next whole frame in the buffer, if
    /// it has arrived.
    fn parse_header(&mut self) -> anyhow::Result<Option<(u8, usize, usize)>> {
        let bytes = self.unparsed();
        if bytes.len() < 2 {
            return Ok(None);
        }
        anyhow::ensure!(bytes[0] & 0x80 != 0, "fragmented frames are not expected");
        anyhow::ensure!(bytes[1] & 0x80 == 0, "a server's frames are not masked");
        let (header, len) = match bytes[1] & 0x7F {
            126 if bytes.len() >= 4 => (4, u16::from_be_bytes([bytes[2], bytes[3]]) as usize),
            127 if bytes.len() >= 10 => (10, u64::from_be_bytes(bytes[2..10].try_into()?) as usize),
            126 | 127 => return Ok(None),
            len => (2, len as usize),
        };
        let opcode = bytes[0] & 0x0F;
        if bytes.len() < header + len {
            // Make room for the whole frame: move what is left to the front, grow if needed.
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buffer.len() < header + len {
                self.buffer.resize(header + len, 0);
            }
            return Ok(None);
        }
        Ok(Some((opcode, header, len)))
    }

    fn unparsed(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    /// Reads what has arrived after what is buffered.
    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.end == self.buffer.len() {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let read = self.stream.read(&mut self.buffer[self.end..]).await?;
        anyhow::ensure!(read > 0, "the server closed the connection");
        self.end += read;
        Ok(())
    }

    async fn send(&mut self, opcode: u8, payload: &[u8]) -> anyhow::Result<()> {
        let mask = [0x5A, 0x17, 0xC3, 0x9E];
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len @ 126..=0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(byte, key)| byte ^ key));
        self.stream.write_all(&frame).await?;
        Ok(())
    }
}
