//! A small SMTP server for tests: speaks enough of RFC 5321 for lettre, records what it
//! receives, and can refuse the first N transactions with a transient error.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone, Default)]
pub struct SmtpLog {
    pub messages: Arc<Mutex<Vec<Vec<u8>>>>,
    pub refused: Arc<Mutex<usize>>,
}

pub struct FakeSmtp {
    pub port: u16,
    pub log: SmtpLog,
}

impl FakeSmtp {
    /// Starts the server on its own thread; `refuse_first` transactions get `451` at MAIL FROM.
    pub fn start(refuse_first: usize) -> FakeSmtp {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let log = SmtpLog::default();
        let server_log = log.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    let log = server_log.clone();
                    tokio::spawn(async move {
                        let _ = serve(stream, log, refuse_first).await;
                    });
                }
            });
        });
        FakeSmtp { port, log }
    }

    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.log.messages.lock().unwrap().clone()
    }

    pub fn refused(&self) -> usize {
        *self.log.refused.lock().unwrap()
    }
}

async fn serve(stream: tokio::net::TcpStream, log: SmtpLog, refuse_first: usize) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader);
    writer.write_all(b"220 fake.test ESMTP ready\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") {
            b"250-fake.test\r\n250 8BITMIME\r\n"
        } else if command.starts_with("MAIL FROM") {
            let mut refused = log.refused.lock().unwrap();
            if *refused < refuse_first {
                *refused += 1;
                b"451 4.3.0 try again later\r\n"
            } else {
                b"250 2.1.0 ok\r\n"
            }
        } else if command == "DATA" {
            writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = Vec::new();
            loop {
                let mut data_line = String::new();
                if lines.read_line(&mut data_line).await? == 0 {
                    return Ok(());
                }
                if data_line == ".\r\n" {
                    break;
                }
                data.extend_from_slice(data_line.strip_prefix('.').unwrap_or(&data_line).as_bytes());
            }
            log.messages.lock().unwrap().push(data);
            b"250 2.0.0 queued\r\n"
        } else if command == "QUIT" {
            writer.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            b"250 2.0.0 ok\r\n"
        };
        writer.write_all(reply).await?;
    }
}
