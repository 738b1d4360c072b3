//! `db-latency`: a TCP relay that adds a fixed one-way delay in each direction, to measure the
//! server as if PostgreSQL ran on another host (on loopback a round trip costs ~50 µs; between
//! hosts of one data centre, a few hundred). Run it, then point any bench at it:
//!
//!   dcports-bench db-latency --listen 127.0.0.1:6543 --upstream 127.0.0.1:5432 --delay-us 250 &
//!   dcports-bench http --database postgres://postgres@127.0.0.1:6543/test
//!
//! Plain threads with blocking I/O: the delay must be finer than tokio's 1 ms timer, and a
//! thread's sleep is good to some tens of microseconds. Bytes pass through untouched (TLS too).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let listen: String = crate::option(args, "--listen", "127.0.0.1:6543".to_owned())?;
    let upstream: String = crate::option(args, "--upstream", "127.0.0.1:5432".to_owned())?;
    let delay = Duration::from_micros(crate::option(args, "--delay-us", 250)?);
    let listener = TcpListener::bind(&listen)?;
    eprintln!("relaying {listen} -> {upstream}, {delay:?} each way");
    for client in listener.incoming() {
        let client = client?;
        let server = TcpStream::connect(&upstream)?;
        for stream in [&client, &server] {
            stream.set_nodelay(true)?;
        }
        relay(client.try_clone()?, server.try_clone()?, delay);
        relay(server, client, delay);
    }
    Ok(())
}

/// Copies `from` to `to`, each chunk held back until `delay` after it was read, in order.
fn relay(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (chunks, delayed) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(read @ 1..) = from.read(&mut buffer) {
            if chunks.send((Instant::now() + delay, buffer[..read].to_vec())).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Read);
    });
    thread::spawn(move || {
        for (due, chunk) in delayed {
            thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
