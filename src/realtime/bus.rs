//! The bus between nodes: with `bus.redis_url` set, every committed event and every revocation
//! is also published on Redis pub/sub, and each node's Broker delivers what the others publish.
//! The database stays the source of truth: a client that missed something while Redis was away
//! catches up by resuming, and sessions put events back in offset order whatever their route.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use prometheus::IntGauge;
use serde::{Deserialize, Serialize};

use super::broker::{Broker, MemberRevoked, MembershipRevoked, Publish};
use crate::events::EventFrame;
use crate::public::cache::PublicCache;

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What nodes tell each other.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BusMessage {
    Events { events: Vec<EventFrame> },
    MemberRevoked { member_id: i32 },
    MembershipRevoked { member_id: i32, channel: String },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    node: String,
    message: BusMessage,
}

/// The bus of this node: Redis, or nothing beyond the local Broker.
#[derive(Clone)]
pub struct Bus {
    redis: Option<Arc<RedisBus>>,
}

struct RedisBus {
    node: String,
    topic: String,
    client: redis::Client,
    publisher: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    up: AtomicBool,
    gauge: IntGauge,
    /// Another node's change may be visible in the public area: its cached answers are stale.
    public_cache: Arc<PublicCache>,
}

impl Bus {
    pub fn local() -> Self {
        Self { redis: None }
    }

    /// Connects to Redis at `url` (in the background: a node starts and serves without it) and
    /// relays what other nodes publish to `broker`.
    pub fn redis(
        url: &str,
        topic: &str,
        broker: Addr<Broker>,
        gauge: IntGauge,
        public_cache: Arc<PublicCache>,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|error| anyhow::anyhow!("setting bus.redis_url is not a Redis URL: {error}"))?;
        let bus = Arc::new(RedisBus {
            node: uuid::Uuid::new_v4().to_string(),
            topic: topic.to_owned(),
            client,
            publisher: tokio::sync::Mutex::new(None),
            up: AtomicBool::new(false),
            gauge,
            public_cache,
        });
        actix_web::rt::spawn(listen(bus.clone(), broker));
        Ok(Self { redis: Some(bus) })
    }

    /// `None` without Redis; otherwise whether the subscription is currently connected.
    pub fn redis_up(&self) -> Option<bool> {
        self.redis.as_ref().map(|bus| bus.up.load(Ordering::Relaxed))
    }

    /// Publishes to the other nodes, without waiting: a request never waits on Redis.
    ///
    /// `tokio::spawn`, not actix's `spawn_local`: the group-commit lanes publish too, and they
    /// run outside any actix arbiter, where `spawn_local` panics.
    pub fn send(&self, message: BusMessage) {
        let Some(bus) = self.redis.clone() else { return };
        tokio::spawn(async move {
            if let Err(error) = bus.publish(&message).await {
                tracing::warn!(error = %error, "could not publish to the bus; other nodes' clients will catch up by resuming");
            }
        });
    }
}

impl RedisBus {
    async fn publish(&self, message: &BusMessage) -> anyhow::Result<()> {
        let payload = serde_json::to_string(&Envelope {
            node: self.node.clone(),
            message: clone_message(message),
        })?;
        let mut publisher = self.publisher.lock().await;
        if publisher.is_none() {
            let connection =
                tokio::time::timeout(Duration::from_secs(1), self.client.get_multiplexed_async_connection()).await??;
            *publisher = Some(connection);
        }
        let Some(connection) = publisher.as_mut() else {
            return Ok(());
        };
        let result: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&self.topic)
            .arg(payload)
            .query_async(connection)
            .await;
        if let Err(error) = result {
            *publisher = None;
            return Err(error.into());
        }
        Ok(())
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        self.gauge.set(i64::from(up));
    }
}

fn clone_message(message: &BusMessage) -> BusMessage {
    match message {
        BusMessage::Events { events } => BusMessage::Events { events: events.clone() },
        BusMessage::MemberRevoked { member_id } => BusMessage::MemberRevoked { member_id: *member_id },
        BusMessage::MembershipRevoked { member_id, channel } => BusMessage::MembershipRevoked {
            member_id: *member_id,
            channel: channel.clone(),
        },
    }
}

/// Subscribes and relays, reconnecting with backoff for as long as the node lives.
async fn listen(bus: Arc<RedisBus>, broker: Addr<Broker>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match bus.client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&bus.topic).await {
                Ok(()) => {
                    bus.set_up(true);
                    tracing::info!(topic = %bus.topic, "bus connected");
                    backoff = Duration::from_millis(100);
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        relay(&bus, &broker, message.get_payload_bytes());
                    }
                    bus.set_up(false);
                    tracing::warn!("bus connection lost; reconnecting");
                }
                Err(error) => tracing::warn!(error = %error, "bus subscription failed"),
            },
            Err(error) => {
                if bus.up.swap(false, Ordering::Relaxed) || backoff == Duration::from_millis(100) {
                    tracing::warn!(error = %error, "bus unreachable; serving local clients only");
                }
                bus.set_up(false);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn relay(bus: &RedisBus, broker: &Addr<Broker>, payload: &[u8]) {
    let envelope: Envelope = match serde_json::from_slice(payload) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::warn!(error = %error, "ignoring a malformed bus message");
            return;
        }
    };
    if envelope.node == bus.node {
        return;
    }
    bus.public_cache.changed();
    match envelope.message {
        BusMessage::Events { events } => broker.do_send(Publish(events)),
        BusMessage::MemberRevoked { member_id } => broker.do_send(MemberRevoked { member_id }),
        BusMessage::MembershipRevoked { member_id, channel } => {
            broker.do_send(MembershipRevoked { member_id, channel })
        }
    }
}
