//! Oversized client frames are skipped unread, not buffered.
//!
//! API.md: an oversized frame gets an `error` frame and only a repeated one a close. actix's
//! WebSocket codec does neither: it reads a frame whole before it looks at its size, so a client
//! that declares a huge frame (up to 2^63 bytes) makes the server buffer all it sends until a
//! timeout, and a frame over the limit is then a protocol error after which it reads nothing
//! more. So the bytes from the client pass through [`SkipOversized`] before the codec. It reads
//! each frame's header, and a data frame whose payload is over the limit is dropped as it streams
//! in; only a header is ever held. In its place the codec gets frames that are valid where the
//! dropped one stood:
//! - a pong carrying [`OVERSIZED`], which the session answers with `payload_too_large`;
//! - when the dropped frame continued a fragmented message the codec has begun, then also an empty
//!   last fragment, which ends that message for the codec (the session discards it);
//! - the rest of a fragmented message whose frame was dropped is dropped with it.
//!
//! A frame that breaks the protocol (a control frame over 125 bytes, a fragment out of turn) is
//! dropped too when it is large, and the codec gets a header it refuses at once, as it would have
//! refused the frame once read.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::web::{Bytes, BytesMut};
use futures_util::Stream;

/// The payload of the pong that stands for a dropped frame. A client that sends it itself is
/// told its frame was too large, with a strike, and loses the fragmented message it was sending.
pub const OVERSIZED: &[u8] = b"dcports:oversized";

const OPCODE_CONTINUATION: u8 = 0x0;
const OPCODE_PONG: u8 = 0xA;
const FIN: u8 = 0x80;
const RESERVED_BITS: u8 = 0x70;
const MASKED: u8 = 0x80;
/// RFC 6455 §5.5: control frames carry at most 125 bytes.
const MAX_CONTROL_PAYLOAD: u64 = 125;
const _: () = assert!(OVERSIZED.len() as u64 <= MAX_CONTROL_PAYLOAD);
/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_HEADER: usize = 14;

pub struct SkipOversized<S> {
    inner: S,
    limit: u64,
    /// The header being read, when a chunk ended inside one.
    header: Vec<u8>,
    /// Payload bytes of the current frame still to come, and whether they pass or are dropped.
    payload_left: u64,
    dropping: bool,
    /// A fragmented message lost a frame: its remaining fragments are dropped too.
    dropping_message: bool,
    /// The codec has begun a fragmented message (it got a first fragment, not yet the last).
    codec_open: bool,
}

impl<S> SkipOversized<S> {
    pub fn new(inner: S, limit: usize) -> Self {
        Self {
            inner,
            limit: limit as u64,
            header: Vec::with_capacity(MAX_HEADER),
            payload_left: 0,
            dropping: false,
            dropping_message: false,
            codec_open: false,
        }
    }

    /// What the codec gets of `chunk`. Without an oversized frame in it (the usual case) that is
    /// the chunk itself, not copied.
    fn rewrite(&mut self, chunk: Bytes) -> Bytes {
        let mut out = Output::new(&chunk);
        let mut at = 0;
        while at < chunk.len() {
            if self.payload_left > 0 {
                let take = self.payload_left.min((chunk.len() - at) as u64) as usize;
                if !self.dropping {
                    out.pass(at, at + take);
                }
                self.payload_left -= take as u64;
                at += take;
                continue;
            }
            let (header_start, held_before) = (at, self.header.len());
            loop {
                let needed = header_len(&self.header);
                if self.header.len() >= needed || at == chunk.len() {
                    break;
                }
                let take = (needed - self.header.len()).min(chunk.len() - at);
                self.header.extend_from_slice(&chunk[at..at + take]);
                at += take;
            }
            if self.header.len() < header_len(&self.header) {
                // The chunk ended inside a header: it waits for the next chunk.
                break;
            }
            // Taken out for `on_header`, which needs `self`; put back empty to keep its buffer.
            let header = std::mem::take(&mut self.header);
            match self.on_header(&header) {
                Some(replacement) => out.push(&replacement),
                None if held_before == 0 => out.pass(header_start, at),
                None => out.push(&header),
            }
            self.header = header;
            self.header.clear();
        }
        out.finish()
    }

    /// A whole frame header arrived: decides what happens to the frame. Returns the bytes that
    /// stand in its place when it is dropped.
    fn on_header(&mut self, header: &[u8]) -> Option<Vec<u8>> {
        let (fin, opcode, len) = (header[0] & FIN != 0, header[0] & 0x0F, payload_len(header));
        self.payload_left = len;
        self.dropping = false;
        if codec_refuses_on_sight(header) {
            return None;
        }
        if opcode >= 0x8 {
            if len <= MAX_CONTROL_PAYLOAD {
                // Control frames may come between fragments and leave them as they are.
                return None;
            }
            return Some(self.refuse());
        }
        let continuation = opcode == OPCODE_CONTINUATION;
        if self.dropping_message {
            if !continuation {
                // A new message before the last one ended.
                return Some(self.refuse());
            }
            self.dropping = true;
            self.dropping_message = !fin;
            return Some(Vec::new());
        }
        if continuation != self.codec_open {
            // A continuation of nothing, or a new message before the last one ended: the codec
            // refuses it once read, which is bounded when it is within the limit.
            if len > self.limit {
                return Some(self.refuse());
            }
            return None;
        }
        if len <= self.limit {
            self.codec_open = !fin;
            return None;
        }
        self.dropping = true;
        self.dropping_message = !fin;
        let mut replacement = masked_frame(FIN | OPCODE_PONG, OVERSIZED);
        if continuation {
            // The codec has begun this message: end it, so that it reads the next one.
            replacement.extend_from_slice(&masked_frame(FIN | OPCODE_CONTINUATION, b""));
            self.codec_open = false;
        }
        Some(replacement)
    }

    /// A frame the codec would refuse only once it had buffered its whole payload (a control
    /// frame over 125 bytes, an oversized frame out of turn) is dropped, and the codec gets in
    /// its place a header it refuses at once: the socket closes with a protocol error, as it
    /// would have.
    fn refuse(&mut self) -> Vec<u8> {
        self.dropping = true;
        self.dropping_message = false;
        masked_frame(FIN | RESERVED_BITS | OPCODE_PONG, b"")
    }
}

impl<S, E> Stream for SkipOversized<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let filtered = self.rewrite(chunk);
                    // A chunk that was all dropped payload gives the codec nothing to read.
                    if !filtered.is_empty() {
                        return Poll::Ready(Some(Ok(filtered)));
                    }
                }
                other => return other,
            }
        }
    }
}

/// How long a header is, as far as its first two bytes tell (2 until they are known).
fn header_len(header: &[u8]) -> usize {
    let Some(&second) = header.get(1) else {
        return 2;
    };
    let length_bytes = match second & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask_bytes = if second & MASKED != 0 { 4 } else { 0 };
    2 + length_bytes + mask_bytes
}

/// Whether actix's codec refuses this header as soon as it reads it, before any payload:
/// reserved bits set, an unmasked client frame, an unknown opcode, a length with its top bit set.
fn codec_refuses_on_sight(header: &[u8]) -> bool {
    let unknown_opcode = matches!(header[0] & 0x0F, 0x3..=0x7 | 0xB..=0xF);
    header[0] & RESERVED_BITS != 0 || header[1] & MASKED == 0 || unknown_opcode || payload_len(header) >> 63 != 0
}

fn payload_len(header: &[u8]) -> u64 {
    match header[1] & 0x7F {
        126 => u16::from_be_bytes([header[2], header[3]]).into(),
        127 => header[2..10].iter().fold(0, |len, byte| len << 8 | u64::from(*byte)),
        len => len.into(),
    }
}

/// The filtered bytes of one chunk: `copied` (once something had to be left out or added), then
/// `chunk[start..end]`, which passes without a copy.
struct Output<'a> {
    chunk: &'a Bytes,
    copied: Option<BytesMut>,
    start: usize,
    end: usize,
}

impl<'a> Output<'a> {
    fn new(chunk: &'a Bytes) -> Self {
        Self {
            chunk,
            copied: None,
            start: 0,
            end: 0,
        }
    }

    /// `chunk[from..to]` passes.
    fn pass(&mut self, from: usize, to: usize) {
        if from != self.end {
            self.copy_pending();
            self.start = from;
        }
        self.end = to;
    }

    /// Bytes that are not in the chunk where they stand (a replacement, a held-back header).
    fn push(&mut self, bytes: &[u8]) {
        self.copy_pending();
        self.copied.get_or_insert_with(BytesMut::new).extend_from_slice(bytes);
    }

    fn copy_pending(&mut self) {
        if self.start < self.end {
            let pending = &self.chunk[self.start..self.end];
            self.copied.get_or_insert_with(BytesMut::new).extend_from_slice(pending);
        }
        self.start = self.end;
    }

    fn finish(mut self) -> Bytes {
        match self.copied.take() {
            None => self.chunk.slice(self.start..self.end),
            Some(mut copied) => {
                copied.extend_from_slice(&self.chunk[self.start..self.end]);
                copied.freeze()
            }
        }
    }
}

/// A small client frame, masked as the codec requires of clients (with a zero key, which leaves
/// the payload as it is).
fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first, MASKED | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    const LIMIT: usize = 16;
    const TEXT: u8 = 0x1;
    const PING: u8 = 0x9;
    const MORE: u8 = 0;
    /// The header that makes the codec close the socket at once.
    const REFUSED: u8 = FIN | RESERVED_BITS | OPCODE_PONG;

    /// A client frame with a real mask key, `first` being its first byte (FIN and opcode).
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x37, 0xFA, 0x21, 0x3D];
        let mut frame = vec![first];
        match payload.len() {
            len @ 0..=125 => frame.push(MASKED | len as u8),
            len @ 126..=0xFFFF => {
                frame.push(MASKED | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(MASKED | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().zip(key.iter().cycle()).map(|(byte, key)| byte ^ key));
        frame
    }

    /// The masked frames in `bytes`, unmasked: (first byte, payload).
    fn decode(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let header = header_len(bytes);
            let len = payload_len(bytes) as usize;
            let key = &bytes[header - 4..header];
            let payload = bytes[header..header + len]
                .iter()
                .zip(key.iter().cycle())
                .map(|(byte, key)| byte ^ key)
                .collect();
            frames.push((bytes[0], payload));
            bytes = &bytes[header + len..];
        }
        frames
    }

    /// What the codec gets when the client's bytes arrive in `chunks`.
    async fn filtered(chunks: Vec<Vec<u8>>) -> Vec<u8> {
        let inner = futures_util::stream::iter(chunks.into_iter().map(|c| Ok::<_, ()>(Bytes::from(c))));
        let mut out = Vec::new();
        let mut stream = SkipOversized::new(inner, LIMIT);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            assert!(!chunk.is_empty(), "an empty chunk reached the codec");
            out.extend_from_slice(&chunk);
        }
        out
    }

    /// The same bytes cut at every point, byte by byte, and in 7-byte pieces: the codec gets the
    /// same frames.
    async fn assert_filters_to(input: &[u8], expected: &[(u8, &[u8])]) {
        let expected: Vec<_> = expected.iter().map(|(first, p)| (*first, p.to_vec())).collect();
        let mut cuts: Vec<Vec<Vec<u8>>> = (0..=input.len())
            .map(|at| vec![input[..at].to_vec(), input[at..].to_vec()])
            .collect();
        cuts.push(input.iter().map(|byte| vec![*byte]).collect());
        cuts.push(input.chunks(7).map(<[u8]>::to_vec).collect());
        for chunks in cuts {
            assert_eq!(decode(&filtered(chunks).await), expected);
        }
    }

    #[tokio::test]
    async fn frames_within_the_limit_pass_unchanged_and_uncopied() {
        let input = [frame(FIN | TEXT, b"hello"), frame(FIN | TEXT, &[b'x'; LIMIT])].concat();
        assert_filters_to(&input, &[(FIN | TEXT, b"hello"), (FIN | TEXT, &[b'x'; LIMIT])]).await;
        let chunk = Bytes::from(input);
        let mut skip = SkipOversized::new(futures_util::stream::empty::<Result<Bytes, ()>>(), LIMIT);
        let passed = skip.rewrite(chunk.clone());
        assert_eq!(passed.as_ptr(), chunk.as_ptr(), "the usual chunk is passed as it is");
    }

    #[tokio::test]
    async fn an_oversized_frame_becomes_a_marked_pong_and_what_follows_passes() {
        let input = [
            frame(FIN | TEXT, b"before"),
            frame(FIN | TEXT, &[b'x'; LIMIT + 1]),
            frame(FIN | TEXT, &vec![b'y'; 70_000]),
            frame(FIN | PING, b"p"),
            frame(FIN | TEXT, b"after"),
        ]
        .concat();
        assert_filters_to(
            &input,
            &[
                (FIN | TEXT, b"before"),
                (FIN | OPCODE_PONG, OVERSIZED),
                (FIN | OPCODE_PONG, OVERSIZED),
                (FIN | PING, b"p"),
                (FIN | TEXT, b"after"),
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn a_fragmented_message_that_loses_a_fragment_is_ended_or_dropped_whole() {
        // The codec has begun the message: it is ended by an empty last fragment.
        let begun = [
            frame(MORE | TEXT, b"ab"),
            frame(MORE | OPCODE_CONTINUATION, &[b'x'; LIMIT + 1]),
            frame(FIN | PING, b"p"),
            frame(MORE | OPCODE_CONTINUATION, b"cd"),
            frame(FIN | OPCODE_CONTINUATION, b"ef"),
            frame(MORE | TEXT, b"next"),
            frame(FIN | OPCODE_CONTINUATION, b"!"),
        ]
        .concat();
        assert_filters_to(
            &begun,
            &[
                (MORE | TEXT, b"ab"),
                (FIN | OPCODE_PONG, OVERSIZED),
                (FIN | OPCODE_CONTINUATION, b""),
                (FIN | PING, b"p"),
                (MORE | TEXT, b"next"),
                (FIN | OPCODE_CONTINUATION, b"!"),
            ],
        )
        .await;
        // Its first fragment was dropped: the codec never hears of it.
        let unbegun = [
            frame(MORE | TEXT, &[b'x'; LIMIT + 1]),
            frame(FIN | OPCODE_CONTINUATION, b"cd"),
            frame(FIN | TEXT, b"next"),
        ]
        .concat();
        assert_filters_to(&unbegun, &[(FIN | OPCODE_PONG, OVERSIZED), (FIN | TEXT, b"next")]).await;
    }

    /// Headers that declare 2^40 bytes: what follows them would be all the codec buffers.
    fn huge_header(first: u8) -> Vec<u8> {
        let mut header = vec![first, MASKED | 127];
        header.extend_from_slice(&(1u64 << 40).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        header
    }

    #[tokio::test]
    async fn large_frames_out_of_turn_are_refused_without_their_payload() {
        let refused: &[(u8, &[u8])] = &[(REFUSED, b"")];
        // A control frame over 125 bytes.
        assert_filters_to(&[huge_header(FIN | PING), vec![0; 300]].concat(), refused).await;
        // A continuation of nothing.
        let stray = [huge_header(FIN | OPCODE_CONTINUATION), vec![0; 300]].concat();
        assert_filters_to(&stray, refused).await;
        // A new message while the codec holds one begun.
        let interleaved = [frame(MORE | TEXT, b"ab"), huge_header(FIN | TEXT), vec![0; 300]].concat();
        assert_filters_to(&interleaved, &[(MORE | TEXT, b"ab"), (REFUSED, b"")]).await;
        // A new message while the rest of a dropped one is still due.
        let after_dropped = [
            frame(MORE | TEXT, &[b'x'; LIMIT + 1]),
            huge_header(FIN | TEXT),
            vec![0; 300],
        ]
        .concat();
        assert_filters_to(&after_dropped, &[(FIN | OPCODE_PONG, OVERSIZED), (REFUSED, b"")]).await;
    }

    #[test]
    fn headers_the_codec_refuses_on_sight_are_left_to_it() {
        let unmasked = [FIN | TEXT, 127, 0, 0, 0, 0, 0, 1, 0, 0];
        let top_bit = [FIN | TEXT, MASKED | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        let reserved = [FIN | 0x40 | TEXT, MASKED | 127, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        let unknown = [FIN | 0x3, MASKED | 127, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for header in [&unmasked[..], &top_bit, &reserved, &unknown] {
            let mut skip = SkipOversized::new(futures_util::stream::empty::<Result<Bytes, ()>>(), LIMIT);
            assert_eq!(&skip.rewrite(Bytes::copy_from_slice(header))[..], header);
        }
    }
}
