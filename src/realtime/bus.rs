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
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::broker::{Broker, MemberRevoked, Publish, RecheckAll, SessionEnded};
use crate::events::EventFrame;
use crate::public::cache::PublicCache;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest one publish (connecting included) may take, and the longest Redis may take to
/// take a subscription or answer its heartbeat.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the subscription is pinged. A subscriber only reads: without a question of its
/// own, a connection whose peer vanished without a reset (a host gone, a failover, a network
/// that drops everything) would look open for ever, and the node would hear nothing more.
const HEARTBEAT: Duration = Duration::from_secs(5);

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
    redis: Option<RedisHandle>,
}

#[derive(Clone)]
struct RedisHandle {
    bus: Arc<RedisBus>,
    /// To the publisher task, which owns the publishing connection.
    outgoing: mpsc::Sender<Outgoing>,
}

/// What the publisher task is handed: a message, or a request to answer, once everything
/// queued before it is published, whether the other nodes have heard it all (or been told to
/// recheck).
enum Outgoing {
    Message(BusMessage),
    Flush(tokio::sync::oneshot::Sender<bool>),
}

struct RedisBus {
    node: String,
    topic: String,
    client: redis::Client,
    up: AtomicBool,
    /// A message was dropped because the publisher's queue was full: the other nodes are owed
    /// a `Recheck`.
    dropped: AtomicBool,
    gauge: IntGauge,
    /// Another node's change may be visible in the public area: its cached answers are stale.
    public_cache: Arc<PublicCache>,
}

impl Bus {
    pub fn local() -> Self {
        Self { redis: None }
    }

    /// Connects to Redis at `url` (in the background: a node starts and serves without it),
    /// publishes what this node sends, and relays what other nodes publish to `broker`.
    ///
    /// Both tasks run on the calling thread, the Broker's: a publish is not queued behind the
    /// sockets and requests a worker thread is busy with, and what arrives is handed to the
    /// Broker without waking another thread.
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
            up: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
            gauge,
            public_cache,
        });
        let (outgoing, queued) = mpsc::channel(PUBLISH_QUEUE);
        actix_web::rt::spawn(publish_all(bus.clone(), queued));
        actix_web::rt::spawn(listen(bus.clone(), broker));
        Ok(Self {
            redis: Some(RedisHandle { bus, outgoing }),
        })
    }

    /// `None` without Redis; otherwise whether the subscription is currently connected.
    pub fn redis_up(&self) -> Option<bool> {
        self.redis.as_ref().map(|redis| redis.bus.up.load(Ordering::Relaxed))
    }

    /// Publishes to the other nodes, without waiting: a request never waits on Redis. Callable
    /// from any thread (the group-commit lanes publish too, outside any actix arbiter).
    pub fn send(&self, message: BusMessage) {
        let Some(redis) = &self.redis else { return };
        if redis.outgoing.try_send(Outgoing::Message(message)).is_err() {
            // Redis has been slower than this node's writes for a whole queue: the other nodes
            // will catch up from the database once told to.
            if !redis.bus.dropped.swap(true, Ordering::Relaxed) {
                tracing::warn!("the bus's queue is full; other nodes' clients will catch up by resuming");
            }
        }
    }
}

impl Bus {
    /// Publishes everything queued so far (and the `Recheck` owed, if one is), waiting at most
    /// `deadline`; false if that was not enough. For a node stopping: its queue would otherwise
    /// go with it, and the other nodes' clients would miss its last events until they resume.
    pub async fn flush(&self, deadline: Duration) -> bool {
        let Some(redis) = &self.redis else { return true };
        let (done, published) = tokio::sync::oneshot::channel();
        let flushed =
            async { redis.outgoing.send(Outgoing::Flush(done)).await.is_ok() && published.await.unwrap_or(false) };
        tokio::time::timeout(deadline, flushed).await.unwrap_or(false)
    }
}

/// Messages waiting for the publisher. Beyond that, Redis is not keeping up (or not answering
/// within `PUBLISH_TIMEOUT`) and messages are dropped, to be repaired by a `Recheck`.
const PUBLISH_QUEUE: usize = 4096;
/// The most messages published in one round trip.
const PUBLISH_BATCH: usize = 256;

/// Publishes the queued messages in order on one connection, for as long as the node lives.
async fn publish_all(bus: Arc<RedisBus>, mut queued: mpsc::Receiver<Outgoing>) {
    let mut publisher = Publisher::default();
    // A flush met while gathering a batch: answered once the batch before it is published.
    let mut flush: Option<tokio::sync::oneshot::Sender<bool>> = None;
    loop {
        if let Some(done) = flush.take() {
            let _ = done.send(publisher.settle(&bus).await);
        }
        let repair_due = publisher.repair.as_ref().map(|repair| repair.due);
        if repair_due.is_some_and(|due| due <= Instant::now()) {
            publisher.repair(&bus).await;
            continue;
        }
        let message = match repair_due {
            None => queued.recv().await,
            // The owed `Recheck` is tried on its backoff even if nothing more is published.
            Some(due) => match tokio::time::timeout_at(due, queued.recv()).await {
                Ok(message) => message,
                Err(_) => continue,
            },
        };
        let mut batch = match message {
            None => return,
            Some(Outgoing::Message(message)) => vec![message],
            Some(Outgoing::Flush(done)) => {
                flush = Some(done);
                continue;
            }
        };
        // Whatever else is waiting goes out with it, in one round trip: under a burst of writes
        // the publisher keeps up by publishing more at a time.
        while batch.len() < PUBLISH_BATCH
            && let Ok(outgoing) = queued.try_recv()
        {
            match outgoing {
                Outgoing::Message(message) => batch.push(message),
                Outgoing::Flush(done) => {
                    flush = Some(done);
                    break;
                }
            }
        }
        // Owing a `Recheck` already, the one owed covers the drop; if not, Redis answers, only
        // slowly, and the others are told at once to catch up on what was dropped (this
        // batch's events too: they were committed before they were queued).
        if bus.dropped.swap(false, Ordering::Relaxed) && publisher.repair.is_none() {
            publisher.failed();
            publisher.repair(&bus).await;
        }
        if let Err(error) = publisher.publish(&bus, &batch).await {
            tracing::warn!(error = %error, "could not publish to the bus; other nodes' clients will catch up by resuming");
        }
    }
}

/// The connection messages are published on, and the `Recheck` owed to the other nodes since
/// a publish failed.
#[derive(Default)]
struct Publisher {
    connection: Option<redis::aio::MultiplexedConnection>,
    repair: Option<Repair>,
}

/// When to try the owed `Recheck` next, and how long to wait after that if it fails.
struct Repair {
    due: Instant,
    backoff: Duration,
}

impl Publisher {
    /// Publishes `messages`, or drops them while a `Recheck` is owed: the other nodes will
    /// catch up from the database anyway, so they are not queued behind a Redis that is not
    /// answering.
    async fn publish(&mut self, bus: &RedisBus, messages: &[BusMessage]) -> anyhow::Result<()> {
        if self.repair.is_some() {
            return Ok(());
        }
        let result = self.send(bus, messages).await;
        if result.is_err() {
            self.failed();
        }
        result
    }

    /// For a flush: a `Recheck` owed, or due for a dropped message, is sent now rather than on
    /// its backoff. False if it could not be: the other nodes may have missed something.
    async fn settle(&mut self, bus: &RedisBus) -> bool {
        if bus.dropped.swap(false, Ordering::Relaxed) {
            self.failed();
        }
        if self.repair.is_some() {
            self.repair(bus).await;
        }
        self.repair.is_none()
    }

    fn failed(&mut self) {
        self.repair.get_or_insert(Repair {
            due: Instant::now() + MIN_BACKOFF,
            backoff: MIN_BACKOFF,
        });
    }

    /// Sends the owed `Recheck`; if Redis is still away, tries again later, backing off.
    async fn repair(&mut self, bus: &RedisBus) {
        if self.send(bus, &[BusMessage::Recheck]).await.is_ok() {
            self.repair = None;
            tracing::info!("bus publishing again; the other nodes recheck their sessions");
        } else if let Some(repair) = &mut self.repair {
            repair.backoff = (repair.backoff * 2).min(MAX_BACKOFF);
            repair.due = Instant::now() + repair.backoff;
        }
    }

    /// Publishes on the connection (made if need be), within `PUBLISH_TIMEOUT`: a Redis that
    /// accepts but never answers must not hold the queue for ever. On failure the connection is
    /// dropped, to be made again next time.
    async fn send(&mut self, bus: &RedisBus, messages: &[BusMessage]) -> anyhow::Result<()> {
        let mut pipeline = redis::pipe();
        for message in messages {
            let payload = serde_json::to_string(&Envelope {
                node: bus.node.as_str(),
                message,
            })?;
            pipeline.cmd("PUBLISH").arg(&bus.topic).arg(payload).ignore();
        }
        let send = async {
            let connection = match &mut self.connection {
                Some(connection) => connection,
                None => self
                    .connection
                    .insert(bus.client.get_multiplexed_async_connection().await?),
            };
            pipeline.query_async::<()>(connection).await
        };
        let result = match tokio::time::timeout(PUBLISH_TIMEOUT, send).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(anyhow::Error::from(error)),
            Err(_) => Err(anyhow::anyhow!("Redis did not answer within {PUBLISH_TIMEOUT:?}")),
        };
        if result.is_err() {
            self.connection = None;
        }
        result
    }
}

impl RedisBus {
    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        self.gauge.set(i64::from(up));
    }
}

/// Subscribes and relays, reconnecting with backoff for as long as the node lives.
async fn listen(bus: Arc<RedisBus>, broker: Addr<Broker>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match subscribe(&bus).await {
            Ok((sink, messages)) => {
                bus.set_up(true);
                tracing::info!(topic = %bus.topic, "bus connected");
                // Whatever the other nodes published while we were not listening is lost.
                broker.do_send(RecheckAll);
                backoff = MIN_BACKOFF;
                let lost = relay_while_alive(&bus, &broker, sink, messages).await;
                bus.set_up(false);
                tracing::warn!(reason = lost, "bus connection lost; reconnecting");
            }
            Err(error) => {
                if bus.up.swap(false, Ordering::Relaxed) || backoff == MIN_BACKOFF {
                    tracing::warn!(error = %error, "bus unreachable; serving local clients only");
                }
                bus.set_up(false);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A subscription to the bus's topic, made within `PUBLISH_TIMEOUT`.
async fn subscribe(bus: &RedisBus) -> anyhow::Result<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
    let subscribing = async {
        let (mut sink, messages) = bus.client.get_async_pubsub().await?.split();
        sink.subscribe(&bus.topic).await?;
        Ok::<_, redis::RedisError>((sink, messages))
    };
    match tokio::time::timeout(PUBLISH_TIMEOUT, subscribing).await {
        Ok(subscribed) => Ok(subscribed?),
        Err(_) => Err(anyhow::anyhow!(
            "Redis did not take the subscription within {PUBLISH_TIMEOUT:?}"
        )),
    }
}

/// Relays what arrives until the connection closes or misses a heartbeat; says which.
async fn relay_while_alive(
    bus: &RedisBus,
    broker: &Addr<Broker>,
    mut sink: redis::aio::PubSubSink,
    mut messages: redis::aio::PubSubStream,
) -> &'static str {
    let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => relay(bus, broker, message.get_payload_bytes()),
                None => return "closed",
            },
            _ = heartbeat.tick() => {
                // Messages arriving meanwhile wait in the connection's queue, not in the kernel.
                let answered = tokio::time::timeout(PUBLISH_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(answered, Ok(Ok(_))) {
                    return "no answer to the heartbeat";
                }
            }
        }
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
    use crate::test_support::black_hole;

    fn bus_at(url: &str) -> Arc<RedisBus> {
        Arc::new(RedisBus {
            node: "test".to_owned(),
            // Tests run at once against one Redis: each listens on a topic of its own.
            topic: format!("dcports-test-{}", uuid::Uuid::new_v4()),
            client: redis::Client::open(url).unwrap(),
            up: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
            gauge: IntGauge::new("test_bus_up", "test").unwrap(),
            public_cache: Arc::new(PublicCache::new(Duration::ZERO, 0)),
        })
    }

    /// A bus on the test Redis, a node's handle on it with a queue of `capacity`, the queue's
    /// other end (for `publish_all`, once the test has queued what it wants), and a subscriber
    /// standing for another node.
    async fn bus_with_queue(capacity: usize) -> (Arc<RedisBus>, Bus, mpsc::Receiver<Outgoing>, OtherNode) {
        let bus = bus_at(&crate::test_support::redis_url());
        let mut pubsub = bus.client.get_async_pubsub().await.expect("Redis at TEST_REDIS_URL");
        pubsub.subscribe(&bus.topic).await.unwrap();
        let (outgoing, queued) = mpsc::channel(capacity);
        let handle = Bus {
            redis: Some(RedisHandle {
                bus: bus.clone(),
                outgoing,
            }),
        };
        (bus, handle, queued, OtherNode(Box::pin(pubsub.into_on_message())))
    }

    struct OtherNode(std::pin::Pin<Box<dyn futures_util::Stream<Item = redis::Msg> + Send>>);

    impl OtherNode {
        async fn hears(&mut self) -> BusMessage {
            let message = tokio::time::timeout(Duration::from_secs(5), self.0.next())
                .await
                .expect("a message within 5 s")
                .unwrap();
            let envelope: Envelope<String, BusMessage> = serde_json::from_slice(message.get_payload_bytes()).unwrap();
            envelope.message
        }
    }

    #[tokio::test]
    async fn a_message_dropped_from_a_full_queue_has_the_other_nodes_told_to_recheck() {
        let (bus, handle, queued, mut other_node) = bus_with_queue(1).await;
        handle.send(BusMessage::MemberRevoked { member_id: 1 });
        handle.send(BusMessage::MemberRevoked { member_id: 2 });
        assert!(
            bus.dropped.load(Ordering::Relaxed),
            "the second message found the queue full"
        );

        tokio::spawn(publish_all(bus.clone(), queued));
        assert!(
            matches!(other_node.hears().await, BusMessage::Recheck),
            "the drop is repaired first"
        );
        assert!(matches!(
            other_node.hears().await,
            BusMessage::MemberRevoked { member_id: 1 }
        ));
        assert!(!bus.dropped.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_burst_is_published_whole_and_in_order() {
        let (bus, handle, queued, mut other_node) = bus_with_queue(PUBLISH_QUEUE).await;
        let burst = (PUBLISH_BATCH * 3 + 7) as i32;
        for member_id in 0..burst {
            handle.send(BusMessage::MemberRevoked { member_id });
        }
        tokio::spawn(publish_all(bus.clone(), queued));
        for expected in 0..burst {
            let heard = other_node.hears().await;
            assert!(
                matches!(heard, BusMessage::MemberRevoked { member_id } if member_id == expected),
                "message {expected}: heard {heard:?}"
            );
        }
        assert!(!bus.dropped.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_flush_returns_once_everything_queued_before_it_is_published() {
        let (bus, handle, queued, mut other_node) = bus_with_queue(PUBLISH_QUEUE).await;
        let burst = (PUBLISH_BATCH * 2 + 7) as i32;
        for member_id in 0..burst {
            handle.send(BusMessage::MemberRevoked { member_id });
        }
        let publishing = tokio::spawn(publish_all(bus.clone(), queued));
        assert!(handle.flush(Duration::from_secs(10)).await);
        // The node stops: its publisher goes with it, and nothing was left in its queue.
        publishing.abort();
        for expected in 0..burst {
            let heard = other_node.hears().await;
            assert!(
                matches!(heard, BusMessage::MemberRevoked { member_id } if member_id == expected),
                "message {expected}: heard {heard:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_flush_sends_the_recheck_owed_for_a_dropped_message() {
        let (bus, handle, queued, mut other_node) = bus_with_queue(1).await;
        let publishing = tokio::spawn(publish_all(bus.clone(), queued));
        // Dropped as if the queue had been full, with nothing else queued after it.
        bus.dropped.store(true, Ordering::Relaxed);
        assert!(handle.flush(Duration::from_secs(10)).await);
        publishing.abort();
        assert!(matches!(other_node.hears().await, BusMessage::Recheck));
        assert!(!bus.dropped.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_flush_that_could_not_reach_redis_says_so() {
        let (url, _held) = black_hole().await;
        let bus = bus_at(&url);
        let (outgoing, queued) = mpsc::channel(PUBLISH_QUEUE);
        let handle = Bus {
            redis: Some(RedisHandle {
                bus: bus.clone(),
                outgoing,
            }),
        };
        let publishing = tokio::spawn(publish_all(bus, queued));
        handle.send(BusMessage::MemberRevoked { member_id: 1 });
        // A deadline far beyond the publisher's own timeouts: the answer is the publisher's.
        assert!(!handle.flush(Duration::from_secs(60)).await);
        publishing.abort();
    }

    #[tokio::test]
    async fn a_publish_to_a_redis_that_never_answers_gives_up_and_later_ones_are_dropped_at_once() {
        let (url, _held) = black_hole().await;
        let (bus, mut publisher) = (bus_at(&url), Publisher::default());
        let message = [BusMessage::MemberRevoked { member_id: 1 }];
        let first = tokio::time::timeout(PUBLISH_TIMEOUT * 3, publisher.publish(&bus, &message)).await;
        assert!(matches!(first, Ok(Err(_))), "the publish gives up within its timeout");
        assert!(publisher.repair.is_some(), "a recheck is owed");
        // Owing a recheck, the node drops what it would publish instead of waiting again.
        let second = tokio::time::timeout(Duration::from_millis(100), publisher.publish(&bus, &message)).await;
        assert!(matches!(second, Ok(Ok(()))));
    }
}
