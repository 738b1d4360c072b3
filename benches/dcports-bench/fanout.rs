//! `fanout`: N authenticated WebSocket subscribers on one committee channel; events written
//! through the HTTP API; deliveries per second, commit-to-receipt latency, memory per socket;
//! and beside it the raw ceiling of writing one frame to N loopback sockets, and the latency of
//! such plain writes at the same load (the raw floor).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Barrier, mpsc};
use tokio::task::JoinHandle;

use crate::server::{NodeOptions, ScratchDatabase, Server};
use crate::wsclient::{Frame, WsClient};
use crate::{option, percentile};

pub struct Options {
    subscribers: Vec<usize>,
    events: usize,
    /// Two nodes over Redis (needs `--database` on PostgreSQL): half the sockets on each, every
    /// write through the first.
    redis: Option<String>,
    /// Worker threads of each of the two nodes. By default the machine's CPUs shared between
    /// them: the nodes stand in for two machines, and with as many workers each as this machine
    /// has CPUs, twice as many threads would take turns on its cores.
    node_workers: usize,
    database: Option<String>,
    /// Also drive the socket.io baseline (benches/socketio) with the same clients.
    socketio: bool,
    /// Clients writing events at the same time, each one write after another (default 1).
    writers: usize,
    /// Events per second on a fixed schedule (open loop), to read the latency at a load below
    /// saturation; by default each writer writes again as soon as its last write is answered.
    rate: Option<f64>,
}

impl Options {
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let list: String = option(args, "--subscribers", "100,1000,5000".to_owned())?;
        let subscribers = list.split(',').map(|n| n.trim().parse()).collect::<Result<_, _>>()?;
        let text = |name: &str| option(args, name, String::new()).map(|value| (!value.is_empty()).then_some(value));
        Ok(Self {
            subscribers,
            events: option(args, "--events", 200)?,
            redis: text("--redis")?,
            node_workers: option(args, "--node-workers", (cpus() / 2).max(1))?,
            database: text("--database")?,
            socketio: args.iter().any(|arg| arg == "--socketio"),
            writers: option(args, "--writers", 1)?,
            rate: match option(args, "--rate", 0.0)? {
                rate if rate > 0.0 => Some(rate),
                _ => None,
            },
        })
    }
}

struct Outcome {
    deliveries_per_sec: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    rss_per_socket_kib: f64,
}

/// A server under test: where sockets connect and how, how one event is written, its memory.
enum Target<'a> {
    /// One dcports node, or two joined by Redis (sockets alternate between them).
    Dcports {
        nodes: &'a [Server],
        token: String,
        committee: i64,
    },
    SocketIo(&'a SocketIoServer),
}

impl Target<'_> {
    fn url(&self, n: usize) -> String {
        match self {
            Target::Dcports { nodes, .. } => nodes[n % nodes.len()].ws.clone(),
            Target::SocketIo(server) => server.ws.clone(),
        }
    }

    fn protocol(&self) -> Protocol {
        match self {
            Target::Dcports { token, committee, .. } => Protocol::Dcports {
                token: token.clone(),
                channel: format!("committee:{committee}"),
            },
            Target::SocketIo(_) => Protocol::SocketIo,
        }
    }

    /// How to write one event, owned, for the writers' thread.
    fn write(&self) -> Write {
        match self {
            Target::Dcports {
                nodes,
                token,
                committee,
            } => Write::Dcports {
                url: format!("{}/api/admin/committees/{committee}", nodes[0].base),
                token: token.clone(),
            },
            Target::SocketIo(server) => Write::SocketIo {
                url: server.publish_url.clone(),
            },
        }
    }

    /// How many nodes the sockets alternate between.
    fn nodes(&self) -> usize {
        match self {
            Target::Dcports { nodes, .. } => nodes.len(),
            Target::SocketIo(_) => 1,
        }
    }

    fn rss_kib(&self) -> u64 {
        match self {
            Target::Dcports { nodes, .. } => nodes.iter().map(Server::rss_kib).sum(),
            Target::SocketIo(server) => crate::server::rss_kib(server.child.id()),
        }
    }
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let scratch = match &options.database {
        Some(url) => Some(ScratchDatabase::create(url).await?),
        None => None,
    };
    let result = run_on(&options, scratch.as_ref().map(|db| db.url.as_str())).await;
    if let Some(scratch) = scratch {
        scratch.drop().await?;
    }
    result
}

async fn run_on(options: &Options, database: Option<&str>) -> anyhow::Result<()> {
    let mut nodes = vec![
        Server::start_node(NodeOptions {
            database,
            redis: options.redis.as_deref(),
            second_node: false,
            workers: options.redis.is_some().then_some(options.node_workers),
        })
        .await?,
    ];
    if options.redis.is_some() {
        anyhow::ensure!(
            database.is_some(),
            "two nodes share a PostgreSQL database: pass --database"
        );
        nodes.push(
            Server::start_node(NodeOptions {
                database,
                redis: options.redis.as_deref(),
                second_node: true,
                workers: Some(options.node_workers),
            })
            .await?,
        );
    }
    let token = nodes[0].login().await?;
    let socketio = match options.socketio {
        true => Some(SocketIoServer::start().await?),
        false => None,
    };
    println!(
        "| subscribers | events | server | deliveries/s | p50 ms | p95 ms | p99 ms | RSS/socket KiB \
         | raw ceiling/s, broadcast order | ratio | raw ceiling/s, burst order | ratio \
         | raw floor p50 ms | raw floor p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let name = match nodes.len() {
        1 => "dcports".to_owned(),
        _ => format!("dcports, 2 nodes + Redis, {} workers each", options.node_workers),
    };
    for (round, &subscribers) in options.subscribers.iter().enumerate() {
        let committee = nodes[0].create_committee(&token, &format!("fanout {round}")).await?;
        let target = Target::Dcports {
            nodes: &nodes,
            token: token.clone(),
            committee,
        };
        let outcome = measure(&target, subscribers, options).await?;
        let ceilings = Ceilings {
            broadcast: raw_ceiling(subscribers, options.events, FRAME_LEN, WriteOrder::Broadcast).await?,
            burst: raw_ceiling(subscribers, options.events, FRAME_LEN, WriteOrder::Burst).await?,
            // At the load dcports carried, scheduled as `--rate` schedules the writes.
            floor: raw_floor(
                subscribers,
                options.events,
                options.rate.unwrap_or(outcome.deliveries_per_sec / subscribers as f64),
                FRAME_LEN,
            )
            .await?,
        };
        print_row(subscribers, options.events, &name, &outcome, &ceilings);
        if let Some(socketio) = &socketio {
            let outcome = measure(&Target::SocketIo(socketio), subscribers, options).await?;
            print_row(
                subscribers,
                options.events,
                "socket.io 4 (Node.js)",
                &outcome,
                &ceilings,
            );
        }
    }
    Ok(())
}

/// The size of a `committee.updated` event frame as the benchmark writes it.
const FRAME_LEN: usize = 230;

/// Deliveries per second of the raw ceiling in both write orders, and the raw latency floor
/// (p50, p99 ms) at the events per second dcports delivered.
struct Ceilings {
    broadcast: f64,
    burst: f64,
    floor: (f64, f64),
}

fn print_row(subscribers: usize, events: usize, server: &str, outcome: &Outcome, ceilings: &Ceilings) {
    println!(
        "| {subscribers} | {events} | {server} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.2} | {:.0} | {:.2} | {:.1} | {:.1} |",
        outcome.deliveries_per_sec,
        outcome.p50_ms,
        outcome.p95_ms,
        outcome.p99_ms,
        outcome.rss_per_socket_kib,
        ceilings.broadcast,
        outcome.deliveries_per_sec / ceilings.broadcast,
        ceilings.burst,
        outcome.deliveries_per_sec / ceilings.burst,
        ceilings.floor.0,
        ceilings.floor.1,
    );
}

async fn measure(target: &Target<'_>, subscribers: usize, options: &Options) -> anyhow::Result<Outcome> {
    let events = options.events;
    let rss_before = target.rss_kib();
    let subscribed = Arc::new(Barrier::new(subscribers + 1));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<anyhow::Result<()>>();
    let mut tasks = Vec::with_capacity(subscribers);
    for n in 0..subscribers {
        let (url, protocol, subscribed, ready) =
            (target.url(n), target.protocol(), subscribed.clone(), ready_tx.clone());
        tasks.push(tokio::spawn(async move {
            subscriber(url, protocol, ready, subscribed, events).await
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
    let rss_per_socket_kib = target.rss_kib().saturating_sub(rss_before) as f64 / subscribers as f64;

    let started = Instant::now();
    write_events(target.write(), events, options.writers, options.rate, started).await?;
    let nodes = target.nodes();
    let mut by_node = vec![Vec::with_capacity(subscribers * events); nodes];
    for (n, task) in tasks.into_iter().enumerate() {
        by_node[n % nodes].extend(task.await.context("subscriber task")??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if by_node.len() > 1 {
        for (node, latencies) in by_node.iter_mut().enumerate() {
            latencies.sort_unstable();
            let ms = |p| percentile(latencies, p) as f64 / 1000.0;
            eprintln!(
                "node {node}'s subscribers: p50 {:.1} ms, p99 {:.1} ms",
                ms(50.0),
                ms(99.0)
            );
        }
    }
    let mut latencies = by_node.concat();
    latencies.sort_unstable();
    let deliveries = latencies.len();
    anyhow::ensure!(
        deliveries == subscribers * events,
        "lost deliveries: {deliveries} of {}",
        subscribers * events
    );
    Ok(Outcome {
        deliveries_per_sec: deliveries as f64 / elapsed,
        p50_ms: percentile(&latencies, 50.0) as f64 / 1000.0,
        p95_ms: percentile(&latencies, 95.0) as f64 / 1000.0,
        p99_ms: percentile(&latencies, 99.0) as f64 / 1000.0,
        rss_per_socket_kib,
    })
}

/// One event write: through dcports' API (a committee's description changed, one
/// `committee.updated` event) or the socket.io baseline's publish endpoint.
enum Write {
    Dcports { url: String, token: String },
    SocketIo { url: String },
}

impl Write {
    async fn send(&self, client: &reqwest::Client, n: usize) -> anyhow::Result<()> {
        let response = match self {
            Write::Dcports { url, token } => {
                client
                    .patch(url)
                    .bearer_auth(token)
                    .json(&json!({ "description": format!("benchmark write {n}") }))
                    .send()
                    .await?
            }
            Write::SocketIo { url } => client.post(url).send().await?,
        };
        anyhow::ensure!(response.status().is_success(), "write failed: {}", response.status());
        Ok(())
    }
}

/// Writes `events` events from `writers` clients, each writing again as soon as its last write
/// is answered (or on the schedule of `rate`). They run on a thread and a runtime of their own,
/// as clients elsewhere would: on the subscribers' runtime, each answer would wait its turn
/// behind a thousand sockets' reads, and the measure would be of the bench's scheduling.
async fn write_events(
    write: Write,
    events: usize,
    writers: usize,
    rate: Option<f64>,
    started: Instant,
) -> anyhow::Result<()> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let written = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| {
                runtime.block_on(async {
                    let (client, counter) = (reqwest::Client::new(), AtomicUsize::new(0));
                    let writer = || async {
                        loop {
                            let n = counter.fetch_add(1, Ordering::Relaxed);
                            if n >= events {
                                return Ok::<_, anyhow::Error>(());
                            }
                            if let Some(rate) = rate {
                                let due = started + Duration::from_secs_f64(n as f64 / rate);
                                tokio::time::sleep_until(due.into()).await;
                            }
                            write.send(&client, n).await?;
                        }
                    };
                    futures_util::future::try_join_all((0..writers).map(|_| writer()))
                        .await
                        .map(drop)
                })
            });
        let _ = done_tx.send(written);
    });
    done_rx.await.context("the writers' thread ended early")?
}

/// The socket.io baseline (benches/socketio/server.js) in a Node.js process of its own.
struct SocketIoServer {
    child: std::process::Child,
    ws: String,
    publish_url: String,
}

impl SocketIoServer {
    async fn start() -> anyhow::Result<Self> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/socketio");
        if !std::path::Path::new(dir).join("node_modules").exists() {
            let status = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix", dir])
                .status()
                .context("npm (Node.js) is needed for the socket.io baseline")?;
            anyhow::ensure!(status.success(), "npm ci failed in {dir}");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = std::process::Command::new("node")
            .arg(format!("{dir}/server.js"))
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("node")?;
        let server = Self {
            child,
            ws: format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"),
            publish_url: format!("http://127.0.0.1:{port}/publish"),
        };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("the socket.io baseline did not start")
    }
}

impl Drop for SocketIoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a subscriber speaks: dcports' protocol (API.md) or socket.io's (Engine.IO 4 over a
/// WebSocket), so that both servers are driven by the same client code.
#[derive(Clone)]
enum Protocol {
    Dcports { token: String, channel: String },
    SocketIo,
}

impl Protocol {
    /// Connects, authenticates and subscribes; returns once the server has confirmed.
    async fn connect(&self, url: &str) -> anyhow::Result<WsClient> {
        let mut socket = WsClient::connect(url).await?;
        // Each step: a frame to send, then the frame (a prefix of it) to wait for.
        let steps = match self {
            Protocol::Dcports { token, channel } => vec![
                (
                    json!({ "type": "auth", "token": token }).to_string(),
                    r#"{"type":"ready""#,
                ),
                (
                    json!({ "type": "subscribe", "channel": channel }).to_string(),
                    r#"{"type":"subscribed""#,
                ),
            ],
            // Join the default namespace, then emit `subscribe` with an acknowledgement (id 1).
            Protocol::SocketIo => vec![
                ("40".to_owned(), "40{"),
                (r#"421["subscribe","committee:1"]"#.to_owned(), r#"431["subscribed"]"#),
            ],
        };
        for (request, answer) in steps {
            socket.send_text(&request).await?;
            loop {
                match socket.next().await? {
                    Frame::Text(text) if text.starts_with(answer) => break,
                    Frame::Text(_) => continue,
                    Frame::Close => anyhow::bail!("closed before subscribed"),
                }
            }
        }
        Ok(socket)
    }

    /// Answers the protocol's keep-alive: Engine.IO pings (`2`) must be answered (`3`).
    fn needs_pong(&self, text: &str) -> bool {
        matches!(self, Protocol::SocketIo) && text == "2"
    }
}

/// One subscriber: authenticates, subscribes, then collects the latency (µs from the event's
/// time to receipt) of `events` events.
async fn subscriber(
    url: String,
    protocol: Protocol,
    ready: mpsc::UnboundedSender<anyhow::Result<()>>,
    subscribed: Arc<Barrier>,
    events: usize,
) -> anyhow::Result<Vec<u64>> {
    let connected = protocol.connect(&url).await;
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
        let Frame::Text(text) = socket.next().await? else {
            anyhow::bail!("closed early");
        };
        let now = chrono::Utc::now();
        if let Some(at) = event_time(text) {
            latencies.push((now - at).num_microseconds().unwrap_or(0).max(0) as u64);
        } else if protocol.needs_pong(text) {
            socket.send_text("3").await?;
        }
    }
    Ok(latencies)
}

/// The `at` of an event frame (dcports' `{"type":"event",…}` or socket.io's `42["event",{…}]`),
/// found without parsing the whole frame: the client must stay cheap.
fn event_time(frame: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if !frame.contains("\"type\":\"event\"") {
        return None;
    }
    let start = frame.find("\"at\":\"")? + 6;
    let end = start + frame[start..].find('"')?;
    chrono::DateTime::parse_from_rfc3339(&frame[start..end])
        .ok()
        .map(|at| at.to_utc())
}

/// How the raw ceiling orders its writes.
#[derive(Clone, Copy)]
enum WriteOrder {
    /// Each socket gets all its frames back to back: the kernel hands the reader many frames per
    /// read, the most favourable case for one write per delivery.
    Burst,
    /// Frame by frame, each to every socket in turn, as a broadcast does: the reader of a socket
    /// usually has one frame waiting per read, as a WebSocket subscriber does.
    Broadcast,
}

/// The ceiling: the same number of deliveries as plain writes of a `frame_len`-byte frame to
/// `connections` loopback sockets, one write per delivery, from one writer task per core.
async fn raw_ceiling(connections: usize, messages: usize, frame_len: usize, order: WriteOrder) -> anyhow::Result<f64> {
    let expected = messages * frame_len;
    let (shares, readers) = raw_pairs(connections, move |mut stream| async move {
        let mut buffer = vec![0u8; 4096];
        let mut received = 0;
        while received < expected {
            let read = stream.read(&mut buffer).await?;
            anyhow::ensure!(read > 0, "closed early");
            received += read;
        }
        Ok(())
    })
    .await?;
    let frame: Arc<[u8]> = vec![b'x'; frame_len].into();
    let started = Instant::now();
    let _open = write_shares(shares, |mut streams| {
        let frame = frame.clone();
        async move {
            match order {
                WriteOrder::Burst => {
                    for stream in &mut streams {
                        for _ in 0..messages {
                            stream.write_all(&frame).await?;
                        }
                    }
                }
                WriteOrder::Broadcast => {
                    for _ in 0..messages {
                        for stream in &mut streams {
                            stream.write_all(&frame).await?;
                        }
                    }
                }
            }
            Ok(streams)
        }
    })
    .await?;
    for reader in readers {
        reader.await??;
    }
    Ok((connections * messages) as f64 / started.elapsed().as_secs_f64())
}

/// This machine's latency floor at a given load: p50 and p99 in ms when `events` frames, each
/// stamped with the time it is sent, are written to `connections` loopback sockets in broadcast
/// order at `rate` events per second, one writer task per core, as plain writes with no server
/// behind them. A server's commit-to-receipt latency at the same rate includes this: the
/// kernel's loopback sends and the readers' wake-ups on the same shared cores.
async fn raw_floor(connections: usize, events: usize, rate: f64, frame_len: usize) -> anyhow::Result<(f64, f64)> {
    let epoch = Instant::now();
    let micros = move || epoch.elapsed().as_micros() as u64;
    let (shares, readers) = raw_pairs(connections, move |mut stream| async move {
        let (mut buffer, mut pending) = (vec![0u8; 4096], Vec::with_capacity(2 * frame_len));
        let mut latencies = Vec::with_capacity(events);
        while latencies.len() < events {
            let read = stream.read(&mut buffer).await?;
            anyhow::ensure!(read > 0, "closed early");
            let now = micros();
            pending.extend_from_slice(&buffer[..read]);
            let whole = pending.len() / frame_len * frame_len;
            for frame in pending[..whole].chunks_exact(frame_len) {
                let sent = u64::from_le_bytes(frame[..8].try_into()?);
                latencies.push(now.saturating_sub(sent));
            }
            pending.drain(..whole);
        }
        Ok(latencies)
    })
    .await?;
    let started = Instant::now();
    let _open = write_shares(shares, |mut streams| async move {
        let mut frame = vec![b'x'; frame_len];
        for n in 0..events {
            let due = started + Duration::from_secs_f64(n as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            frame[..8].copy_from_slice(&micros().to_le_bytes());
            for stream in &mut streams {
                stream.write_all(&frame).await?;
            }
        }
        Ok(streams)
    })
    .await?;
    let mut latencies = Vec::with_capacity(connections * events);
    for reader in readers {
        latencies.extend(reader.await??);
    }
    latencies.sort_unstable();
    let ms = |p| percentile(&latencies, p) as f64 / 1000.0;
    Ok((ms(50.0), ms(99.0)))
}

/// Runs `write` on each share of the writing ends, each in a task of its own, and waits for them
/// all; returns the ends, to be kept open until the readers are done.
async fn write_shares<W, F>(shares: Vec<Vec<TcpStream>>, write: W) -> anyhow::Result<Vec<Vec<TcpStream>>>
where
    W: Fn(Vec<TcpStream>) -> F,
    F: Future<Output = anyhow::Result<Vec<TcpStream>>> + Send + 'static,
{
    let writers: Vec<_> = shares.into_iter().map(|share| tokio::spawn(write(share))).collect();
    let mut open = Vec::with_capacity(writers.len());
    for writer in writers {
        open.push(writer.await??);
    }
    Ok(open)
}

/// The reading and writing ends of `connections` loopback TCP connections, Nagle off on the
/// writing ends as on dcports' sockets. Each reading end is read by `read` in a task of its own;
/// the writing ends come shared out among as many writers as the machine has cores.
async fn raw_pairs<R, F, T>(
    connections: usize,
    read: R,
) -> anyhow::Result<(Vec<Vec<TcpStream>>, Vec<JoinHandle<anyhow::Result<T>>>)>
where
    R: Fn(TcpStream) -> F + Clone + Send + 'static,
    F: Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    // A deep accept queue: thousands of connections arrive at once.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    let listener = socket.listen(4096)?;
    let address = listener.local_addr()?;
    let mut readers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let read = read.clone();
        readers.push(tokio::spawn(async move {
            let stream = TcpStream::connect(address).await?;
            read(stream).await
        }));
    }
    let writers = cpus();
    let mut shares: Vec<Vec<TcpStream>> = (0..writers).map(|_| Vec::new()).collect();
    for n in 0..connections {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
            .await
            .map_err(|_| anyhow::anyhow!("only {n} of {connections} raw connections arrived"))??;
        stream.set_nodelay(true)?;
        shares[n % writers].push(stream);
    }
    Ok((shares, readers))
}

/// `memory`: the server's resident memory per idle authenticated, subscribed socket.
pub async fn memory(args: &[String]) -> anyhow::Result<()> {
    let sockets: usize = option(args, "--sockets", 10_000)?;
    let server = Server::start(None).await?;
    let token = server.login().await?;
    let committee = server.create_committee(&token, "memory").await?;
    let protocol = Protocol::Dcports {
        token: token.clone(),
        channel: format!("committee:{committee}"),
    };
    let before = server.rss_kib();
    let subscribed = Arc::new(Barrier::new(sockets + 1));
    // In two halves: the second half's growth is what one more socket costs, without what the
    // first connections also brought once (database connections opened, threads' heaps).
    let first_half = sockets / 2;
    connect_idle(&server, &protocol, first_half, &subscribed).await?;
    let half = server.rss_kib();
    connect_idle(&server, &protocol, sockets - first_half, &subscribed).await?;
    let after = server.rss_kib();
    println!(
        "| idle authenticated sockets | server RSS before | at {first_half} | after | per socket | per socket, second half |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {sockets} | {before} KiB | {half} KiB | {after} KiB | {:.1} KiB | {:.1} KiB |",
        after.saturating_sub(before) as f64 / sockets as f64,
        after.saturating_sub(half) as f64 / (sockets - first_half) as f64,
    );
    subscribed.wait().await;
    Ok(())
}

/// Opens `count` clients that authenticate, subscribe and stay idle until `subscribed` is
/// passed; returns once all are subscribed and the server has settled for 2 s.
async fn connect_idle(
    server: &Server,
    protocol: &Protocol,
    count: usize,
    subscribed: &Arc<Barrier>,
) -> anyhow::Result<()> {
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<anyhow::Result<()>>();
    for n in 1..=count {
        let (url, protocol, subscribed, ready) = (
            server.ws.clone(),
            protocol.clone(),
            subscribed.clone(),
            ready_tx.clone(),
        );
        // Zero events: each client stays connected, idle, until the measurement is taken.
        tokio::spawn(async move { subscriber(url, protocol, ready, subscribed, 0).await });
        if n % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for n in 0..count {
        match tokio::time::timeout(Duration::from_secs(120), ready_rx.recv()).await {
            Ok(Some(result)) => result?,
            _ => anyhow::bail!("only {n} of {count} sockets got ready"),
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// The CPUs this process may run on.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
