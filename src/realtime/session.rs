//! `WsSession`: one actor per WebSocket. Authenticates, subscribes, replays what the client
//! missed, forwards live events, keeps the connection alive and enforces the limits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_http::ws::Item as Fragment;
use actix_web::web;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use bytestring::ByteString;
use futures_util::future::Either;

use super::broker::{Connect, Disconnect, Present, SessionId, Subscribe, Unsubscribe};
use super::frames::OVERSIZED;
use super::outbox::{Delivery, Outbox};
use super::protocol::{ClientFrame, ServerFrame};
use crate::auth::extract::{authorize, member_still_authorized};
use crate::committees;
use crate::error::ApiError;
use crate::events::{self, Channel, Replay};
use crate::state::AppState;

/// A replay longer than this, or larger than `realtime.max_pending_bytes`, is answered with
/// `reset`: reloading over HTTP is cheaper, and the frames would wait in the socket's buffer,
/// outside the bound every live frame is held to.
const MAX_REPLAY: i64 = 10_000;
const REPLAY_PAGE: u64 = 1_000;
/// Client frames: a burst of `RATE_BURST`, then `RATE_PER_SEC` per second.
const RATE_BURST: f64 = 100.0;
const RATE_PER_SEC: f64 = 50.0;
/// Over-limit frames tolerated before the socket is closed.
const MAX_STRIKES: u32 = 200;
const MAX_BAD_FRAMES: u32 = 10;
/// Largest client message, whole or in fragments; the protocol's messages are small JSON objects.
pub(super) const MAX_MESSAGE_BYTES: usize = 64 * 1024;

static NEXT_SESSION_ID: AtomicUsize = AtomicUsize::new(1);

pub struct WsSession {
    id: SessionId,
    state: web::Data<AppState>,
    member: Option<AuthenticatedMember>,
    subscriptions: Subscriptions,
    last_seen: Instant,
    /// Frames the broker has routed to us and we have not yet taken; shared with the broker.
    outbox: Arc<Outbox>,
    bad_frames: u32,
    rate: TokenBucket,
    auth_timeout: Option<SpawnHandle>,
    expiry: Option<SpawnHandle>,
    /// A text message arriving in fragments (RFC 6455 §5.4), until its last one.
    fragments: Fragments,
    /// Subscribes started so far: each one's number, to recognise its own `Replaying` entry.
    subscribe_attempts: u64,
    /// Whether the Broker knows this session (from the first `auth` frame on).
    connected: bool,
    /// A recheck found a subscription still replaying: recheck again once it is live.
    recheck_pending: bool,
}

#[derive(Clone)]
struct AuthenticatedMember {
    id: i32,
    /// The `token_version` of the token it authenticated with: a later bump revokes the socket.
    token_version: i32,
    /// The login session (`sid`) of that token: its logout closes the socket.
    login: Arc<str>,
    /// The secretariat reads every committee's channel, member of it or not: a removal from a
    /// committee ends none of its subscriptions.
    reads_every_committee: bool,
}

impl AuthenticatedMember {
    /// Whether the account, its token and its login session are all still valid.
    async fn still_authorized(&self, state: &AppState) -> Result<entity::member::Model, ApiError> {
        member_still_authorized(state, self.id, self.token_version, &self.login).await
    }
}

enum Subscription {
    /// Replay in progress: live events wait here until the replay has been sent. `attempt`
    /// tells this subscribe from an earlier one to the same channel that was unsubscribed while
    /// it was still reading, and whose end must then leave this one alone.
    Replaying { attempt: u64, buffered: HeldBack },
    /// Delivering in offset order. Events that arrive ahead of a missing one (two commits
    /// published in the other order, or from another node) wait in `ahead`; if the gap is not
    /// closed shortly, the missing events are read from the database.
    Live {
        /// The subscribe this came from, as in `Replaying`: a recheck's findings apply to the
        /// subscription it read for, not to a later one to the same channel.
        attempt: u64,
        last_offset: i64,
        ahead: HeldBack,
        filling: bool,
    },
}

/// An event as a session passes it on: its frame, and the member it removes from the channel's
/// committee, if it does (see [`EventFrame::removed_member`]).
struct Held {
    frame: ByteString,
    removes: Option<i32>,
}

impl Held {
    /// Whether this event ends the subscription of a session that `ending` removals end (see
    /// [`WsSession::removal_ending_subscriptions`]).
    fn ends(&self, ending: Option<i32>) -> bool {
        ending.is_some() && self.removes == ending
    }
}

/// Events held back, behind a missing one or behind a replay still being read, by offset, and
/// their size.
#[derive(Default)]
struct HeldBack {
    events: BTreeMap<i64, Held>,
    bytes: usize,
}

impl HeldBack {
    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    fn first(&self) -> Option<i64> {
        self.events.keys().next().copied()
    }

    fn insert(&mut self, offset: i64, event: Held) {
        self.bytes += event.frame.len();
        if let Some(replaced) = self.events.insert(offset, event) {
            self.bytes -= replaced.frame.len();
        }
    }

    fn remove(&mut self, offset: i64) -> Option<Held> {
        let event = self.events.remove(&offset)?;
        self.bytes -= event.frame.len();
        Some(event)
    }

    fn pop_first(&mut self) -> Option<(i64, Held)> {
        let (offset, event) = self.events.pop_first()?;
        self.bytes -= event.frame.len();
        Some((offset, event))
    }

    fn drop_before(&mut self, offset: i64) {
        while self.first().is_some_and(|first| first < offset) {
            self.pop_first();
        }
    }
}

/// A session's subscriptions by channel name. A session has a handful, so a vector searched in
/// order is both smaller and faster than a hash map (this lookup runs for every delivered frame).
#[derive(Default)]
struct Subscriptions(Vec<(Arc<str>, Subscription)>);

impl Subscriptions {
    fn position(&self, channel: &str) -> Option<usize> {
        self.0.iter().position(|(name, _)| &**name == channel)
    }

    fn contains_key(&self, channel: &str) -> bool {
        self.position(channel).is_some()
    }

    fn get_mut(&mut self, channel: &str) -> Option<&mut Subscription> {
        let index = self.position(channel)?;
        Some(&mut self.0[index].1)
    }

    /// Adds or replaces the subscription to `channel`.
    fn insert(&mut self, channel: Arc<str>, subscription: Subscription) {
        match self.get_mut(&channel) {
            Some(existing) => *existing = subscription,
            None => {
                // One slot at a time: most sessions hold one or two, and a first push would
                // otherwise reserve four (a quarter KiB per idle socket).
                self.0.reserve_exact(1);
                self.0.push((channel, subscription));
            }
        }
    }

    fn remove_entry(&mut self, channel: &str) -> Option<(Arc<str>, Subscription)> {
        let index = self.position(channel)?;
        Some(self.0.swap_remove(index))
    }

    fn remove(&mut self, channel: &str) -> Option<Subscription> {
        self.remove_entry(channel).map(|(_, subscription)| subscription)
    }
}

/// Why a session closes when the events it holds back, behind a gap or behind a replay still
/// being read, pass the outbox's bound.
pub const HELD_BACK_TOO_LONG: &str = "too many events held back; reconnect and resume";

/// How long an out-of-order event waits for the ones before it before they are fetched.
const GAP_WAIT: Duration = Duration::from_millis(200);
/// How long before fetching them again when the database could not be read.
const GAP_RETRY: Duration = Duration::from_secs(1);

/// Where a fragmented text message stands.
#[derive(Default)]
enum Fragments {
    #[default]
    None,
    Collecting(Vec<u8>),
    /// It went over the size limit: its remaining fragments are dropped.
    Discarding,
}

struct TokenBucket {
    tokens: f64,
    refilled: Instant,
    strikes: u32,
}

impl TokenBucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * RATE_PER_SEC).min(RATE_BURST);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            true
        } else {
            self.strikes += 1;
            false
        }
    }
}

impl WsSession {
    pub fn new(state: web::Data<AppState>) -> Self {
        Self {
            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed) as SessionId,
            state,
            member: None,
            subscriptions: Subscriptions::default(),
            last_seen: Instant::now(),
            outbox: Arc::default(),
            bad_frames: 0,
            rate: TokenBucket {
                tokens: RATE_BURST,
                refilled: Instant::now(),
                strikes: 0,
            },
            auth_timeout: None,
            expiry: None,
            fragments: Fragments::None,
            subscribe_attempts: 0,
            connected: false,
            recheck_pending: false,
        }
    }

    fn send(ctx: &mut ws::WebsocketContext<Self>, frame: ServerFrame<'_>) {
        ctx.text(frame.to_text());
    }

    fn error(ctx: &mut ws::WebsocketContext<Self>, code: &str, channel: Option<&str>, message: &str) {
        Self::send(ctx, ServerFrame::Error { code, channel, message });
    }

    fn close(ctx: &mut ws::WebsocketContext<Self>, code: CloseCode, description: &str) {
        ctx.close(Some(CloseReason {
            code,
            description: Some(description.to_owned()),
        }));
        ctx.stop();
    }

    fn bad_frame(&mut self, ctx: &mut ws::WebsocketContext<Self>, message: &str) {
        self.strike(
            ctx,
            "bad_frame",
            message,
            (CloseCode::Policy, "too many malformed frames"),
        );
    }

    /// A bad frame is answered with an `error` frame of `code`; the one past `MAX_BAD_FRAMES`,
    /// of whatever kind, closes the socket with `close` instead.
    fn strike(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        code: &str,
        message: &str,
        (close_code, reason): (CloseCode, &str),
    ) {
        self.bad_frames += 1;
        if self.bad_frames > MAX_BAD_FRAMES {
            Self::close(ctx, close_code, reason);
        } else {
            Self::error(ctx, code, None, message);
        }
    }

    /// A message over the size limit was left unread (see `frames`); a fragmented one in
    /// progress is discarded up to its last fragment. Like a malformed frame, it is answered, and
    /// only a repeated one closes the socket.
    fn too_large(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if let Fragments::Collecting(_) = self.fragments {
            self.fragments = Fragments::Discarding;
        }
        let close = (CloseCode::Size, "too many frames over the size limit");
        self.strike(ctx, "payload_too_large", "frame too large; it was ignored", close);
    }

    /// Collects a fragmented text message and handles it once whole, within the same size limit
    /// as a single frame.
    fn assemble(&mut self, fragment: Fragment, ctx: &mut ws::WebsocketContext<Self>) {
        let (bytes, last) = match (fragment, &self.fragments) {
            (Fragment::FirstText(bytes), Fragments::None) => (bytes, false),
            (Fragment::FirstBinary(_), Fragments::None) => {
                self.fragments = Fragments::Discarding;
                return self.bad_frame(ctx, "binary frames are not supported");
            }
            (Fragment::Continue(bytes), Fragments::Collecting(_)) => (bytes, false),
            (Fragment::Last(bytes), Fragments::Collecting(_)) => (bytes, true),
            (Fragment::Continue(_), Fragments::Discarding) => return,
            (Fragment::Last(_), Fragments::Discarding) => {
                self.fragments = Fragments::None;
                return;
            }
            // A new message before the last one ended, or a continuation of nothing.
            _ => return Self::close(ctx, CloseCode::Protocol, "unexpected continuation frame"),
        };
        let mut message = match std::mem::take(&mut self.fragments) {
            Fragments::Collecting(buffer) => buffer,
            _ => Vec::new(),
        };
        if message.len() + bytes.len() > MAX_MESSAGE_BYTES {
            self.fragments = if last { Fragments::None } else { Fragments::Discarding };
            return self.too_large(ctx);
        }
        message.extend_from_slice(&bytes);
        if !last {
            self.fragments = Fragments::Collecting(message);
            return;
        }
        match std::str::from_utf8(&message) {
            Ok(text) => self.handle_text(text, ctx),
            Err(_) => Self::close(ctx, CloseCode::Invalid, "text message is not UTF-8"),
        }
    }

    fn handle_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if !self.rate.take() {
            if self.rate.strikes >= MAX_STRIKES {
                Self::close(ctx, CloseCode::Policy, "message rate limit exceeded");
            } else if self.rate.strikes == 1 {
                Self::error(ctx, "rate_limited", None, "too many frames; slow down");
            }
            return;
        }
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(_) => return self.bad_frame(ctx, "expected a JSON object with a known type"),
        };
        match (frame, self.member.is_some()) {
            (ClientFrame::Auth { token }, _) => self.authenticate(token, ctx),
            (_, false) => Self::close(ctx, CloseCode::Policy, "the first frame must be auth"),
            (ClientFrame::Subscribe { channel, after }, true) => self.subscribe(channel, after, ctx),
            (ClientFrame::Unsubscribe { channel }, true) => self.unsubscribe(&channel, ctx),
        }
    }

    fn authenticate(&mut self, token: String, ctx: &mut ws::WebsocketContext<Self>) {
        // The Broker learns of the session before its account is read: a suspension committed
        // after that read reaches the Broker after this, and closes the session. (Registered
        // after the read, the session could miss it and outlive the suspension.)
        // The token is decoded once, here; the account is read below.
        let claims = self.state.tokens.decode(&token);
        if !self.connected
            && let Some(member_id) = claims.as_ref().ok().and_then(|claims| claims.member_id().ok())
        {
            self.connected = true;
            self.state.broker.do_send(Connect {
                id: self.id,
                member_id,
                addr: ctx.address(),
                outbox: self.outbox.clone(),
                relay: super::relay::local(),
            });
        }
        let state = self.state.clone();
        let work = move || async move {
            let claims = claims?;
            let member = authorize(&state, &claims).await?;
            let channels = committees::service::readable_channels(&state, &member).await?;
            Ok::<_, ApiError>((member, claims, channels))
        };
        // `ctx.wait` holds back the session's other futures until the check is done. A fresh
        // token must not wait for a turn, then: the session's own subscribe or recheck may hold
        // one, and could not give it back. The first `auth` comes before any such work.
        let check = match self.member {
            None => Either::Left(self.state.socket_checks.clone().run(work)),
            Some(_) => Either::Right(Box::pin(work())),
        };
        ctx.wait(check.into_actor(self).map(|result, session, ctx| match result {
            Ok((member, claims, channels)) => {
                if session.member.as_ref().is_some_and(|current| current.id != member.id) {
                    return Self::close(ctx, CloseCode::Policy, "re-authentication as another member");
                }
                session.member = Some(AuthenticatedMember {
                    id: member.id,
                    token_version: claims.ver,
                    login: Arc::from(claims.sid),
                    reads_every_committee: member.role == crate::domain::Role::Secretariat.as_str(),
                });
                session.schedule_expiry(claims.exp, ctx);
                if let Some(handle) = session.auth_timeout.take() {
                    ctx.cancel_future(handle);
                }
                let names: Vec<String> = channels.iter().map(Channel::to_string).collect();
                Self::send(
                    ctx,
                    ServerFrame::Ready {
                        member_id: member.id,
                        channels: &names,
                    },
                );
            }
            // The database could not be asked: the token may well be good, so the client should
            // come back, not log in again.
            Err(ApiError::Internal(error)) => {
                tracing::warn!(error = ?error, "could not check a socket's token");
                Self::close(ctx, CloseCode::Again, "could not check the token now; reconnect")
            }
            Err(_) => Self::close(ctx, CloseCode::Policy, "authentication failed"),
        }));
    }

    /// Closes the socket when the access token (plus a grace period) expires, unless the client
    /// re-authenticates with a fresh token first.
    fn schedule_expiry(&mut self, exp: i64, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(handle) = self.expiry.take() {
            ctx.cancel_future(handle);
        }
        let remaining = (exp - chrono::Utc::now().timestamp()).max(0) as u64;
        let delay = Duration::from_secs(remaining + self.state.settings.realtime.token_grace_secs);
        self.expiry = Some(ctx.run_later(delay, |_, ctx| {
            Self::close(ctx, CloseCode::Policy, "access token expired; re-authenticate");
        }));
    }

    fn subscribe(&mut self, name: String, after: Option<i64>, ctx: &mut ws::WebsocketContext<Self>) {
        let Ok(channel) = name.parse::<Channel>() else {
            return Self::error(ctx, "bad_channel", Some(&name), "unknown channel");
        };
        if after.is_some_and(|after| after < 0) {
            return Self::error(ctx, "bad_frame", Some(&name), "after must not be negative");
        }
        let key: Arc<str> = Arc::from(name.as_str());
        if self.subscriptions.contains_key(&key) {
            return Self::error(
                ctx,
                "already_subscribed",
                Some(&name),
                "already subscribed to this channel",
            );
        }
        let Some(credentials) = self.member.clone() else {
            return;
        };
        self.subscribe_attempts += 1;
        let attempt = self.subscribe_attempts;
        let buffered = HeldBack::default();
        self.subscriptions
            .insert(key.clone(), Subscription::Replaying { attempt, buffered });
        let (state, id, routed) = (self.state.clone(), self.id, key.clone());
        let work = self.state.socket_checks.clone().run(move || async move {
            let key = routed;
            // Routed first, read second: whatever commits from now on reaches our buffer, and
            // the database holds everything before; the overlap is removed by offset. Routed
            // before access is checked, too: a removal from the committee committed after the
            // check reaches the Broker after this, and unsubscribes us there.
            state
                .broker
                .send(Subscribe {
                    id,
                    channel: key.clone(),
                })
                .await
                .map_err(anyhow::Error::from)?;
            let member = credentials.still_authorized(&state).await?;
            if !committees::service::can_read_channel(&state, &member, channel).await? {
                return Ok(None);
            }
            let replay = match after {
                None => Replayed::Frames {
                    frames: Vec::new(),
                    head: events::head(state.db.conn(), &key).await?,
                },
                Some(after) => replay_all(&state, &key, after).await?,
            };
            Ok::<_, ApiError>(Some(replay))
        });
        ctx.spawn(
            work.into_actor(self)
                .map(move |result, session, ctx| session.finish_subscribe(key, attempt, result, ctx)),
        );
    }

    fn finish_subscribe(
        &mut self,
        channel: Arc<str>,
        attempt: u64,
        result: Result<Option<Replayed>, ApiError>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        match self.subscriptions.get_mut(&channel) {
            Some(Subscription::Replaying { attempt: current, .. }) if *current == attempt => {}
            // Subscribed again since: that subscribe, routed after our unsubscribe, owns it now.
            Some(_) => return,
            // Unsubscribed (or revoked) while the replay was being read; our routing may have
            // reached the Broker after the unsubscribe did, so undo it.
            None => {
                return self.state.broker.do_send(Unsubscribe { id: self.id, channel });
            }
        }
        let Some(Subscription::Replaying { mut buffered, .. }) = self.subscriptions.remove(&channel) else {
            return;
        };
        let (frames, head) = match result {
            Ok(Some(Replayed::Frames { frames, head })) => (frames, head),
            Ok(Some(Replayed::Reset { head })) => {
                Self::send(ctx, ServerFrame::Reset { channel: &channel });
                (Vec::new(), head)
            }
            Ok(None) => {
                self.state.broker.do_send(Unsubscribe {
                    id: self.id,
                    channel: channel.clone(),
                });
                return Self::error(
                    ctx,
                    "forbidden",
                    Some(&channel),
                    "you may not subscribe to this channel",
                );
            }
            // Suspended or revoked while the Broker's notice was on its way: it closes us anyway.
            Err(ApiError::Unauthorized) => return self.revoke(ctx),
            Err(error) => {
                tracing::warn!(error = %error, channel = %channel, "subscribe failed");
                self.state.broker.do_send(Unsubscribe {
                    id: self.id,
                    channel: channel.clone(),
                });
                return Self::error(
                    ctx,
                    "internal_error",
                    Some(&channel),
                    "the subscription failed; try again",
                );
            }
        };
        let (mut last_offset, ending) = (head, self.removal_ending_subscriptions());
        for (offset, event) in frames {
            last_offset = last_offset.max(offset);
            let removed = event.ends(ending);
            ctx.text(event.frame);
            // Removed from the committee after the access check, before the read.
            if removed {
                Self::send(
                    ctx,
                    ServerFrame::Subscribed {
                        channel: &channel,
                        offset,
                    },
                );
                return self.end_subscription(&channel, ctx);
            }
        }
        Self::send(
            ctx,
            ServerFrame::Subscribed {
                channel: &channel,
                offset: last_offset,
            },
        );
        let live = Subscription::Live {
            attempt,
            last_offset,
            ahead: HeldBack::default(),
            filling: false,
        };
        self.subscriptions.insert(channel.clone(), live);
        // Presence is who works in a committee now. In `public`, which every account may read,
        // it would tell anyone who is online across all committees; in `member:{id}` only oneself.
        if matches!(channel.parse(), Ok(Channel::Committee(_))) {
            self.state.broker.do_send(Present {
                id: self.id,
                channel: channel.clone(),
            });
        }
        while let Some((offset, event)) = buffered.pop_first()
            && !closing(ctx)
        {
            self.accept(&channel, offset, event, ctx);
        }
        // A recheck ran while this was replaying: it could not check this channel then.
        if std::mem::take(&mut self.recheck_pending) {
            self.recheck(ctx);
        }
    }

    /// The member whose removal from a committee ends this session's subscription to the
    /// committee's channel: its own, unless it reads every committee anyway.
    fn removal_ending_subscriptions(&self) -> Option<i32> {
        self.member
            .as_ref()
            .filter(|member| !member.reads_every_committee)
            .map(|member| member.id)
    }

    /// The member may no longer see `channel` (it left the channel's committee): the
    /// subscription ends here, on this session and in the Broker's routing.
    fn end_subscription(&mut self, channel: &Arc<str>, ctx: &mut ws::WebsocketContext<Self>) {
        self.subscriptions.remove(channel);
        self.state.broker.do_send(Unsubscribe {
            id: self.id,
            channel: channel.clone(),
        });
        Self::send(
            ctx,
            ServerFrame::Unsubscribed {
                channel,
                reason: "access_revoked",
            },
        );
    }

    /// Delivers a live event in offset order, holding it back if one before it is missing. The
    /// member's removal from the committee ends the subscription right after it: whatever came
    /// after it, from this node or another, was committed after the member left.
    fn accept(&mut self, channel: &Arc<str>, offset: i64, event: Held, ctx: &mut ws::WebsocketContext<Self>) {
        let ending = self.removal_ending_subscriptions();
        let Some(Subscription::Live { last_offset, ahead, .. }) = self.subscriptions.get_mut(channel) else {
            return;
        };
        if offset <= *last_offset {
            return;
        }
        // The common case: the next event, nothing held back.
        if offset == *last_offset + 1 && ahead.is_empty() {
            *last_offset = offset;
            let removed = event.ends(ending);
            ctx.text(event.frame);
            if removed {
                self.end_subscription(channel, ctx);
            }
            return;
        }
        ahead.insert(offset, event);
        while let Some(event) = ahead.remove(*last_offset + 1) {
            *last_offset += 1;
            let removed = event.ends(ending);
            ctx.text(event.frame);
            if removed {
                return self.end_subscription(channel, ctx);
            }
        }
        let Some(Subscription::Live { ahead, filling, .. }) = self.subscriptions.get_mut(channel) else {
            return;
        };
        // What is still held back counts against the outbox's bound: frames this client has yet
        // to receive.
        if ahead.bytes > self.state.settings.realtime.max_pending_bytes {
            return Self::close(ctx, CloseCode::Again, HELD_BACK_TOO_LONG);
        }
        if !ahead.is_empty() && !*filling {
            *filling = true;
            let channel = channel.clone();
            ctx.run_later(GAP_WAIT, move |session, ctx| session.fill_gap(channel, ctx));
        }
    }

    /// Reads the events still missing before the ones held back, and delivers them all.
    fn fill_gap(&mut self, channel: Arc<str>, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(Subscription::Live {
            last_offset,
            ahead,
            filling,
            ..
        }) = self.subscriptions.get_mut(&channel)
        else {
            return;
        };
        let Some(first_ahead) = ahead.first() else {
            *filling = false;
            return;
        };
        let after = *last_offset;
        let state = self.state.clone();
        let key = channel.clone();
        // Read as a replay is, and bounded as one: a gap as long as a bus outage (thousands of
        // events another node committed) answers reset rather than filling the socket's buffer.
        let read = self
            .state
            .socket_checks
            .clone()
            .run(move || async move { replay_all(&state, &key, after).await });
        ctx.spawn(read.into_actor(self).map(move |result, session, ctx| {
            if let Some(Subscription::Live { filling, .. }) = session.subscriptions.get_mut(&channel) {
                *filling = false;
            }
            match result {
                Ok(Replayed::Frames { frames, .. }) => {
                    for (offset, event) in frames {
                        session.accept(&channel, offset, event, ctx);
                    }
                }
                // Retention removed what was missed, or too much was: the client must reload,
                // and the events held back go out after the reset, so that the channel does not
                // stop here.
                Ok(Replayed::Reset { .. }) => {
                    Self::send(ctx, ServerFrame::Reset { channel: &channel });
                    session.skip_to(&channel, first_ahead - 1, ctx);
                }
                // Read again shortly: held-back events must not wait for the channel's next one.
                Err(error) => {
                    tracing::warn!(error = %error, channel = %channel, "could not fill an event gap; retrying");
                    if let Some(Subscription::Live { filling, .. }) = session.subscriptions.get_mut(&channel) {
                        *filling = true;
                    }
                    ctx.run_later(GAP_RETRY, move |session, ctx| session.fill_gap(channel, ctx));
                }
            }
        }));
    }

    /// Checks again, from the database, what the Broker may not have been told (the bus between
    /// nodes was down): whether the member may still use the workspace and each channel, and
    /// which events were committed after the last one delivered.
    fn recheck(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(credentials) = self.member.clone() else {
            return;
        };
        let mut live: Vec<(Arc<str>, u64, i64)> = Vec::new();
        for (name, subscription) in &self.subscriptions.0 {
            match subscription {
                Subscription::Live {
                    attempt, last_offset, ..
                } => live.push((name.clone(), *attempt, *last_offset)),
                // Checked once its replay is done (`finish_subscribe`).
                Subscription::Replaying { .. } => self.recheck_pending = true,
            }
        }
        let state = self.state.clone();
        let work = self.state.socket_checks.clone().run(move || async move {
            let member = credentials.still_authorized(&state).await?;
            let mut found = Vec::with_capacity(live.len());
            for (name, attempt, after) in live {
                let readable = match name.parse::<Channel>() {
                    Ok(channel) => committees::service::can_read_channel(&state, &member, channel).await?,
                    Err(_) => false,
                };
                let replay = match readable {
                    true => Some(replay_all(&state, &name, after).await?),
                    false => None,
                };
                found.push((name, attempt, replay));
            }
            Ok::<_, ApiError>(found)
        });
        ctx.spawn(work.into_actor(self).map(|result, session, ctx| match result {
            Ok(found) => {
                for (channel, attempt, replay) in found {
                    session.catch_up(channel, attempt, replay, ctx);
                }
            }
            Err(ApiError::Unauthorized) => session.revoke(ctx),
            Err(error) => {
                tracing::warn!(error = %error, "could not recheck a session; retrying");
                ctx.run_later(GAP_RETRY, |session, ctx| session.recheck(ctx));
            }
        }));
    }

    /// Applies what a recheck found for one channel: no longer readable, or what was missed.
    fn catch_up(
        &mut self,
        channel: Arc<str>,
        attempt: u64,
        replay: Option<Replayed>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let same = matches!(
            self.subscriptions.get_mut(&channel),
            Some(Subscription::Live { attempt: current, .. }) if *current == attempt
        );
        if !same {
            return;
        }
        match replay {
            None => self.end_subscription(&channel, ctx),
            Some(Replayed::Frames { frames, .. }) => {
                for (offset, event) in frames {
                    self.accept(&channel, offset, event, ctx);
                }
            }
            Some(Replayed::Reset { head }) => {
                Self::send(ctx, ServerFrame::Reset { channel: &channel });
                self.skip_to(&channel, head, ctx);
            }
        }
    }

    /// Moves past everything up to `head`, which the client was told to reload (or which can no
    /// longer be read): delivers what was held back after it, in order.
    fn skip_to(&mut self, channel: &Arc<str>, head: i64, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(Subscription::Live { last_offset, ahead, .. }) = self.subscriptions.get_mut(channel) else {
            return;
        };
        let next = (*last_offset).max(head) + 1;
        *last_offset = next - 1;
        ahead.drop_before(next);
        if let Some(frame) = ahead.remove(next) {
            self.accept(channel, next, frame, ctx);
        }
    }

    /// The member may no longer use the workspace (suspended, or their tokens revoked).
    fn revoke(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.member = None;
        Self::close(ctx, CloseCode::Policy, "access revoked");
    }

    fn unsubscribe(&mut self, name: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let Some((key, _)) = self.subscriptions.remove_entry(name) else {
            return Self::error(ctx, "not_subscribed", Some(name), "not subscribed to this channel");
        };
        self.state.broker.do_send(Unsubscribe {
            id: self.id,
            channel: key,
        });
        Self::send(
            ctx,
            ServerFrame::Unsubscribed {
                channel: name,
                reason: "requested",
            },
        );
    }
}

/// A replay as the session sends it: each event's frame, serialized once.
enum Replayed {
    Frames { frames: Vec<(i64, Held)>, head: i64 },
    Reset { head: i64 },
}

/// Reads every event after `after`, page by page, or answers `Reset` when too much was missed:
/// more than [`MAX_REPLAY`] events, or more than `realtime.max_pending_bytes` of frames.
async fn replay_all(state: &AppState, channel: &str, after: i64) -> Result<Replayed, ApiError> {
    let head = events::head(state.db.conn(), channel).await?;
    if head - after > MAX_REPLAY || after > head {
        return Ok(Replayed::Reset { head });
    }
    let max_bytes = state.settings.realtime.max_pending_bytes;
    let (mut frames, mut bytes, mut cursor) = (Vec::new(), 0, after);
    loop {
        let (events, head) = match events::replay(state.db.conn(), channel, cursor, REPLAY_PAGE).await? {
            Replay::Reset { head } => return Ok(Replayed::Reset { head }),
            Replay::Events { events, head } => (events, head),
        };
        let done = (events.len() as u64) < REPLAY_PAGE;
        for event in events {
            let frame = ByteString::from(serde_json::to_string(&event).unwrap_or_default());
            bytes += frame.len();
            if bytes > max_bytes {
                return Ok(Replayed::Reset { head });
            }
            cursor = event.offset;
            let removes = event.removed_member();
            frames.push((event.offset, Held { frame, removes }, event.added_member()));
        }
        if done || cursor >= head {
            return Ok(Replayed::Frames {
                frames: ending_removals_only(frames),
                head: head.max(cursor),
            });
        }
    }
}

/// A replay's events, with the removals a later event of the same replay undid (the member was
/// added back) no longer ending a subscription: such a member reads the channel now.
fn ending_removals_only(events: Vec<(i64, Held, Option<i32>)>) -> Vec<(i64, Held)> {
    let mut added_later = std::collections::HashSet::new();
    let mut kept: Vec<(i64, Held)> = events
        .into_iter()
        .rev()
        .map(|(offset, mut event, added)| {
            if event.removes.is_some_and(|member| added_later.contains(&member)) {
                event.removes = None;
            }
            added_later.extend(added);
            (offset, event)
        })
        .collect();
    kept.reverse();
    kept
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let limits = &self.state.settings.realtime;
        let client_timeout = Duration::from_secs(limits.client_timeout_secs);
        ctx.run_interval(Duration::from_secs(limits.heartbeat_secs), move |session, ctx| {
            if session.last_seen.elapsed() > client_timeout {
                Self::close(ctx, CloseCode::Policy, "heartbeat timeout");
            } else {
                ctx.ping(b"");
            }
        });
        self.auth_timeout = Some(
            ctx.run_later(Duration::from_secs(limits.auth_timeout_secs), |session, ctx| {
                if session.member.is_none() {
                    Self::close(ctx, CloseCode::Policy, "authentication timeout");
                }
            }),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if self.connected {
            self.state.broker.do_send(Disconnect { id: self.id });
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        match message {
            Ok(ws::Message::Text(text)) => self.handle_text(&text, ctx),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(payload)) if payload == OVERSIZED => self.too_large(ctx),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Binary(_)) => self.bad_frame(ctx, "binary frames are not supported"),
            Ok(ws::Message::Close(_)) => ctx.stop(),
            Ok(ws::Message::Continuation(fragment)) => self.assemble(fragment, ctx),
            Ok(ws::Message::Nop) => {}
            // `frames` keeps oversized frames from the codec; left for this is a length no frame
            // may declare (its top bit set).
            Err(ws::ProtocolError::Overflow) => Self::close(ctx, CloseCode::Size, "frame too large"),
            Err(error) => {
                tracing::debug!(error = %error, "websocket protocol error");
                Self::close(ctx, CloseCode::Protocol, "protocol error");
            }
        }
    }
}

/// The outbox has frames: take them all. Everything they put on the socket goes out in one write.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for WsSession {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) {
        for delivery in self.outbox.take() {
            // Closed by one of them (held back too long): nothing may follow a close frame.
            if closing(ctx) {
                break;
            }
            self.route(delivery, ctx);
        }
    }
}

/// The session is closing: it sent its close frame, after which it may send nothing.
fn closing(ctx: &ws::WebsocketContext<WsSession>) -> bool {
    ctx.state() != actix::ActorState::Running
}

impl WsSession {
    fn route(&mut self, delivery: Delivery, ctx: &mut ws::WebsocketContext<Self>) {
        let Delivery {
            channel,
            offset,
            frame,
            removes,
        } = delivery;
        let Some(offset) = offset else {
            if self.subscriptions.contains_key(&channel) {
                ctx.text(frame);
            }
            return;
        };
        let event = Held { frame, removes };
        match self.subscriptions.get_mut(&channel) {
            Some(Subscription::Replaying { buffered, .. }) => {
                buffered.insert(offset, event);
                // A replay that waits long (the database slow, the checks queued after a
                // restart) while the channel is busy: bounded like the outbox it stands for.
                if buffered.bytes > self.state.settings.realtime.max_pending_bytes {
                    Self::close(ctx, CloseCode::Again, HELD_BACK_TOO_LONG);
                }
            }
            Some(Subscription::Live { .. }) => self.accept(&channel, offset, event, ctx),
            None => {}
        }
    }
}

/// The member lost access to the workspace.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Revoked;

impl Handler<Revoked> for WsSession {
    type Result = ();

    fn handle(&mut self, _: Revoked, ctx: &mut Self::Context) {
        self.revoke(ctx);
    }
}

/// A login session of the member ended: this socket closes if it authenticated with it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded {
    pub login: Arc<str>,
}

impl Handler<SessionEnded> for WsSession {
    type Result = ();

    fn handle(&mut self, message: SessionEnded, ctx: &mut Self::Context) {
        if self
            .member
            .as_ref()
            .is_some_and(|member| *member.login == *message.login)
        {
            self.revoke(ctx);
        }
    }
}

/// The Broker may have missed revocations and events (the bus was down): check from the database.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Recheck;

impl Handler<Recheck> for WsSession {
    type Result = ();

    fn handle(&mut self, _: Recheck, ctx: &mut Self::Context) {
        self.recheck(ctx);
    }
}

/// The client fell too far behind; it should reconnect and resume.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Overloaded;

impl Handler<Overloaded> for WsSession {
    type Result = ();

    fn handle(&mut self, _: Overloaded, ctx: &mut Self::Context) {
        Self::close(ctx, CloseCode::Again, "too far behind; reconnect and resume");
    }
}

/// The node is shutting down.
#[derive(Message)]
#[rtype(result = "()")]
pub struct GoingAway;

impl Handler<GoingAway> for WsSession {
    type Result = ();

    fn handle(&mut self, _: GoingAway, ctx: &mut Self::Context) {
        Self::close(ctx, CloseCode::Restart, "server restarting; reconnect and resume");
    }
}
