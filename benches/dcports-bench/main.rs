//! The dcports benchmark suite. Starts the real server binary (release) on SQLite in a temporary
//! folder, drives it over loopback, and prints markdown tables for BENCHMARKS.md.
//!
//!   cargo bench --bench dcports-bench -- fanout [--subscribers 100,1000,5000] [--events 200]
//!       [--writers 1] [--rate EVENTS_PER_SEC] [--socketio]
//!       [--database postgres://… --redis redis://… [--node-workers N]  (two nodes)]
//!   cargo bench --bench dcports-bench -- http [--seconds 5] [--committees 1] [--database postgres://…]
//!   cargo bench --bench dcports-bench -- login-storm [--seconds 5]
//!   cargo bench --bench dcports-bench -- memory [--sockets 10000]
//!   cargo bench --bench dcports-bench -- db-latency [--listen …] [--upstream …] [--delay-us 250]

mod fanout;
mod http;
mod latency;
mod server;
mod wsclient;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| arg != "--bench").collect();
    let (command, rest) = args
        .split_first()
        .map(|(c, r)| (c.as_str(), r))
        .unwrap_or(("fanout", &[]));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match command {
        "fanout" => runtime.block_on(fanout::run(fanout::Options::parse(rest)?)),
        "http" => runtime.block_on(http::run(http::Options::parse(rest)?)),
        "memory" => runtime.block_on(fanout::memory(rest)),
        "login-storm" => runtime.block_on(http::login_storm(http::Options::parse(rest)?)),
        "db-latency" => latency::run(rest),
        other => anyhow::bail!("unknown benchmark {other:?}; try: fanout, http, login-storm, memory, db-latency"),
    }
}

/// Parses `--name value` from the arguments, with a default.
pub fn option<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> anyhow::Result<T> {
    match args.iter().position(|arg| arg == name) {
        None => Ok(default),
        Some(index) => args
            .get(index + 1)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("{name} needs a value")),
    }
}

/// The p-th percentile of sorted samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
