//! The bus between nodes: with `bus.redis_url` set, every committed event and every revocation
//! is also published on Redis pub/sub, and each node's Broker delivers what the others publish.
//! The database stays the source of truth: a client that missed something while Redis was away
//! catches up by resuming, and sessions put events back in offset order whatever their route.
//!
//! Pub/sub keeps nothing for a node that is not listening, so whatever crossed the bus during an
//! outage is lost, revocations included. Hence two repairs: a node whose subscription comes back
//! has its sessions recheck their access and catch up from the database; and a node that failed
//! to publish asks every other node, once it can publish again, to do the same (`Recheck`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use prometheus::IntGauge;
use serde::{Deserialize, Serialize};

use super::broker::{Broker, MemberRevoked, MembershipRevoked, Publish, RecheckAll, SessionEnded};
use crate::events::EventFrame;
use crate::public::cache::PublicCache;

const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest one publish (connecting included) may take.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// What nodes tell each other.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BusMessage {
    Events {
        events: Vec<EventFrame>,
    },
    MemberRevoked {
        member_id: i32,
    },
    MembershipRevoked {
        member_id: i32,
        channel: String,
    },
    SessionEnded {
        member_id: i32,
        login: String,
    },
    /// The sender could not publish something: what the others heard may be incomplete.
    Recheck,
}

/// A message as it crosses the bus, with the node that sent it. Borrowed to publish (the
/// events are serialized where they lie), owned when received.
#[derive(Serialize, Deserialize)]
struct Envelope<N, M> {
    node: N,
    message: M,
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
    publisher: tokio::sync::Mutex<Publisher>,
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
            publisher: tokio::sync::Mutex::new(Publisher::default()),
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

/// The connection messages are published on, and whether a publish has failed since the other
/// nodes were last told to recheck. Behind one lock, so that no failure can slip in between the
/// `Recheck` that repairs earlier ones and the flag being cleared.
#[derive(Default)]
struct Publisher {
    connection: Option<redis::aio::MultiplexedConnection>,
    owes_recheck: bool,
}

impl RedisBus {
    async fn publish(self: &Arc<Self>, message: &BusMessage) -> anyhow::Result<()> {
        let mut publisher = self.publisher.lock().await;
        // A `Recheck` is owed: the other nodes will catch up from the database anyway, so the
        // message is dropped, not queued behind a Redis that is not answering.
        if publisher.owes_recheck {
            return Ok(());
        }
        let result = self.send_locked(&mut publisher, message).await;
        if result.is_err() {
            publisher.owes_recheck = true;
            tokio::spawn(repair(self.clone()));
        }
        result
    }

    /// Sends the `Recheck` owed for a failed publish if Redis is back; whether it is still owed.
    async fn try_repair(&self) -> bool {
        let mut publisher = self.publisher.lock().await;
        if !publisher.owes_recheck {
            return false;
        }
        if self.send_locked(&mut publisher, &BusMessage::Recheck).await.is_err() {
            return true;
        }
        publisher.owes_recheck = false;
        tracing::info!("bus publishing again; the other nodes recheck their sessions");
        false
    }

    /// Publishes on the publisher's connection (made if need be), within `PUBLISH_TIMEOUT`: the
    /// lock is held meanwhile, and a Redis that accepts but never answers must not hold it
    /// for ever. On failure the connection is dropped, to be made again next time.
    async fn send_locked(&self, publisher: &mut Publisher, message: &BusMessage) -> anyhow::Result<()> {
        let payload = serde_json::to_string(&Envelope {
            node: self.node.as_str(),
            message,
        })?;
        let send = async {
            let connection = match &mut publisher.connection {
                Some(connection) => connection,
                None => publisher
                    .connection
                    .insert(self.client.get_multiplexed_async_connection().await?),
            };
            redis::cmd("PUBLISH")
                .arg(&self.topic)
                .arg(payload)
                .query_async::<i64>(connection)
                .await
        };
        let result = match tokio::time::timeout(PUBLISH_TIMEOUT, send).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(anyhow::Error::from(error)),
            Err(_) => Err(anyhow::anyhow!("Redis did not answer within {PUBLISH_TIMEOUT:?}")),
        };
        if result.is_err() {
            publisher.connection = None;
        }
        result
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        self.gauge.set(i64::from(up));
    }
}

/// Keeps trying to tell the other nodes to recheck after a failed publish, even if this node
/// has nothing more to publish (the next publish would otherwise carry it).
async fn repair(bus: Arc<RedisBus>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::time::sleep(backoff).await;
        if !bus.try_repair().await {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
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
                    // Whatever the other nodes published while we were not listening is lost.
                    broker.do_send(RecheckAll);
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
    let envelope: Envelope<String, BusMessage> = match serde_json::from_slice(payload) {
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
        BusMessage::SessionEnded { member_id, login } => broker.do_send(SessionEnded {
            member_id,
            login: Arc::from(login),
        }),
        BusMessage::Recheck => broker.do_send(RecheckAll),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Redis that accepts connections and never answers (a black-holed network, a stalled
    /// server): its connections stay open, so only a timeout ends a publish.
    async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        (url, held)
    }

    fn bus_at(url: &str) -> Arc<RedisBus> {
        Arc::new(RedisBus {
            node: "test".to_owned(),
            topic: "dcports-test".to_owned(),
            client: redis::Client::open(url).unwrap(),
            publisher: tokio::sync::Mutex::new(Publisher::default()),
            up: AtomicBool::new(false),
            gauge: IntGauge::new("test_bus_up", "test").unwrap(),
            public_cache: Arc::new(PublicCache::new(Duration::ZERO, 0)),
        })
    }

    #[tokio::test]
    async fn a_publish_to_a_redis_that_never_answers_gives_up_and_later_ones_are_dropped_at_once() {
        let (url, _held) = black_hole().await;
        let bus = bus_at(&url);
        let message = BusMessage::MemberRevoked { member_id: 1 };
        let first = tokio::time::timeout(PUBLISH_TIMEOUT * 3, bus.publish(&message)).await;
        assert!(matches!(first, Ok(Err(_))), "the publish gives up within its timeout");
        assert!(bus.publisher.lock().await.owes_recheck);
        // Owing a recheck, the node drops what it would publish instead of waiting again.
        let second = tokio::time::timeout(Duration::from_millis(100), bus.publish(&message)).await;
        assert!(matches!(second, Ok(Ok(()))));
    }
}
