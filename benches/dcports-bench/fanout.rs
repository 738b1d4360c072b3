//! `fanout`: N authenticated WebSocket subscribers on one committee channel; events written
//! through the HTTP API; deliveries per second, commit-to-receipt latency, memory per socket;
//! and beside it the raw ceiling of writing one frame to N loopback sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Barrier, mpsc};
use tokio_tungstenite::tungstenite::Message;

use crate::server::Server;
use crate::{option, percentile};

pub struct Options {
    subscribers: Vec<usize>,
    events: usize,
}

impl Options {
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let list: String = option(args, "--subscribers", "100,1000,5000".to_owned())?;
        let subscribers = list.split(',').map(|n| n.trim().parse()).collect::<Result<_, _>>()?;
        Ok(Self {
            subscribers,
            events: option(args, "--events", 200)?,
        })
    }
}

struct Outcome {
    deliveries_per_sec: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    rss_per_socket_kib: f64,
    raw_per_sec: f64,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let server = Server::start(None).await?;
    let token = server.login().await?;
    println!(
        "| subscribers | events | deliveries/s | p50 ms | p95 ms | p99 ms | RSS/socket KiB | raw ceiling/s | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (round, &subscribers) in options.subscribers.iter().enumerate() {
        let committee = server.create_committee(&token, &format!("fanout {round}")).await?;
        let outcome = measure(&server, &token, committee, subscribers, options.events).await?;
        println!(
            "| {subscribers} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.2} |",
            options.events,
            outcome.deliveries_per_sec,
            outcome.p50_ms,
            outcome.p95_ms,
            outcome.p99_ms,
            outcome.rss_per_socket_kib,
            outcome.raw_per_sec,
            outcome.deliveries_per_sec / outcome.raw_per_sec,
        );
    }
    Ok(())
}

async fn measure(
    server: &Server,
    token: &str,
    committee: i64,
    subscribers: usize,
    events: usize,
) -> anyhow::Result<Outcome> {
    let channel = format!("committee:{committee}");
    let rss_before = server.rss_kib();
    let subscribed = Arc::new(Barrier::new(subscribers + 1));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<anyhow::Result<()>>();
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let (url, token, channel, subscribed) =
            (server.ws.clone(), token.to_owned(), channel.clone(), subscribed.clone());
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            subscriber(url, token, channel, ready, subscribed, events).await
        }));
        // Connecting thousands at once would only measure the accept queue.
        if tasks.len() % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Every subscriber reports in; a failure ends the run instead of leaving it waiting.
    for n in 0..subscribers {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(result)) => result?,
            _ => anyhow::bail!("only {n} of {subscribers} subscribers got ready within a minute"),
        }
    }
    subscribed.wait().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_per_socket_kib = server.rss_kib().saturating_sub(rss_before) as f64 / subscribers as f64;

    let started = Instant::now();
    for n in 0..events {
        server.touch_committee(token, committee, n).await?;
    }
    let mut latencies = Vec::with_capacity(subscribers * events);
    for task in tasks {
        latencies.extend(task.await.context("subscriber task")??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let deliveries = latencies.len();
    anyhow::ensure!(
        deliveries == subscribers * events,
        "lost deliveries: {deliveries} of {}",
        subscribers * events
    );
    let raw_per_sec = raw_ceiling(subscribers, events, 230).await?;
    Ok(Outcome {
        deliveries_per_sec: deliveries as f64 / elapsed,
        p50_ms: percentile(&latencies, 50.0) as f64 / 1000.0,
        p95_ms: percentile(&latencies, 95.0) as f64 / 1000.0,
        p99_ms: percentile(&latencies, 99.0) as f64 / 1000.0,
        rss_per_socket_kib,
        raw_per_sec,
    })
}

/// One subscriber: authenticates, subscribes, then collects the latency (µs from the event's
/// time to receipt) of `events` events.
async fn subscriber(
    url: String,
    token: String,
    channel: String,
    ready: mpsc::UnboundedSender<anyhow::Result<()>>,
    subscribed: Arc<Barrier>,
    events: usize,
) -> anyhow::Result<Vec<u64>> {
    let connected = async {
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
        socket
            .send(Message::text(json!({ "type": "auth", "token": token }).to_string()))
            .await?;
        socket
            .send(Message::text(
                json!({ "type": "subscribe", "channel": channel }).to_string(),
            ))
            .await?;
        loop {
            match socket.next().await.context("closed before subscribed")?? {
                Message::Text(text) if text.contains(r#""type":"subscribed""#) => return Ok(socket),
                Message::Close(frame) => anyhow::bail!("closed before subscribed: {frame:?}"),
                _ => continue,
            }
        }
    }
    .await;
    let mut socket = match connected {
        Ok(socket) => {
            let _ = ready.send(Ok(()));
            socket
        }
        Err(error) => {
            let _ = ready.send(Err(anyhow::anyhow!("{error:#}")));
            return Err(error);
        }
    };
    subscribed.wait().await;
    let mut latencies = Vec::with_capacity(events);
    while latencies.len() < events {
        let Message::Text(text) = socket.next().await.context("closed early")?? else {
            continue;
        };
        let now = chrono::Utc::now();
        if let Some(at) = event_time(&text) {
            latencies.push((now - at).num_microseconds().unwrap_or(0).max(0) as u64);
        }
    }
    Ok(latencies)
}

/// The `at` of an event frame, found without parsing the whole frame (the client must stay cheap).
fn event_time(frame: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if !frame.starts_with("{\"type\":\"event\"") {
        return None;
    }
    let start = frame.find("\"at\":\"")? + 6;
    let end = start + frame[start..].find('"')?;
    chrono::DateTime::parse_from_rfc3339(&frame[start..end])
        .ok()
        .map(|at| at.to_utc())
}

/// The ceiling: the same number of deliveries as plain writes of a `frame_len`-byte frame to
/// `connections` loopback sockets, one write per delivery.
async fn raw_ceiling(connections: usize, messages: usize, frame_len: usize) -> anyhow::Result<f64> {
    // A deep accept queue: thousands of connections arrive at once.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    let listener = socket.listen(4096)?;
    let address = listener.local_addr()?;
    let expected = messages * frame_len;
    let mut readers = Vec::with_capacity(connections);
    for _ in 0..connections {
        readers.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(address).await?;
            let mut buffer = vec![0u8; 64 * 1024];
            let mut received = 0;
            while received < expected {
                let read = stream.read(&mut buffer).await?;
                anyhow::ensure!(read > 0, "closed early");
                received += read;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    let mut streams = Vec::with_capacity(connections);
    for n in 0..connections {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
            .await
            .map_err(|_| anyhow::anyhow!("only {n} of {connections} raw connections arrived"))??;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let frame: Arc<[u8]> = vec![b'x'; frame_len].into();
    let started = Instant::now();
    let writers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let frame = frame.clone();
            tokio::spawn(async move {
                for _ in 0..messages {
                    stream.write_all(&frame).await?;
                }
                Ok::<_, anyhow::Error>(stream)
            })
        })
        .collect();
    let mut keep = Vec::new();
    for writer in writers {
        keep.push(writer.await??);
    }
    for reader in readers {
        reader.await??;
    }
    Ok((connections * messages) as f64 / started.elapsed().as_secs_f64())
}

/// `memory`: the server's resident memory per idle authenticated, subscribed socket.
pub async fn memory(args: &[String]) -> anyhow::Result<()> {
    let sockets: usize = option(args, "--sockets", 10_000)?;
    let server = Server::start(None).await?;
    let token = server.login().await?;
    let committee = server.create_committee(&token, "memory").await?;
    let before = server.rss_kib();
    let subscribed = Arc::new(Barrier::new(sockets + 1));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<anyhow::Result<()>>();
    let mut tasks = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let (url, token, channel, subscribed, ready) = (
            server.ws.clone(),
            token.clone(),
            format!("committee:{committee}"),
            subscribed.clone(),
            ready_tx.clone(),
        );
        // Zero events: each client stays connected, idle, until the measurement is taken.
        tasks.push(tokio::spawn(async move {
            subscriber(url, token, channel, ready, subscribed, 0).await
        }));
        if tasks.len() % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for n in 0..sockets {
        match tokio::time::timeout(Duration::from_secs(120), ready_rx.recv()).await {
            Ok(Some(result)) => result?,
            _ => anyhow::bail!("only {n} of {sockets} sockets got ready"),
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_kib();
    println!("| idle authenticated sockets | server RSS before | after | per socket |");
    println!("|---|---|---|---|");
    println!(
        "| {sockets} | {before} KiB | {after} KiB | {:.1} KiB |",
        (after.saturating_sub(before)) as f64 / sockets as f64
    );
    subscribed.wait().await;
    Ok(())
}
