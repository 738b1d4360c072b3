//! What the unit tests that talk to Redis share.

/// The test Redis: `TEST_REDIS_URL`, or the one this kind of machine runs.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A Redis that accepts connections and never answers (a stalled server, a black-holed
/// network): its connections stay open, so only a timeout ends a command. It listens as long
/// as the returned task lives.
pub async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
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
