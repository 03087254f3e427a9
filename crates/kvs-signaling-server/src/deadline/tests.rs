use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::WriteDeadline;

#[tokio::test]
async fn a_peer_that_stops_reading_fails_the_write_at_the_deadline() {
    // A pipe of 64 bytes that nobody reads: the write pushes back for good.
    let (ours, _theirs) = tokio::io::duplex(64);
    let mut stream = WriteDeadline::new(ours, Duration::from_millis(100));
    let started = tokio::time::Instant::now();
    let err = stream.write_all(&[0; 4096]).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn a_slow_reader_that_keeps_up_within_the_deadline_is_served() {
    let (ours, mut theirs) = tokio::io::duplex(64);
    let mut stream = WriteDeadline::new(ours, Duration::from_millis(500));
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut chunk = [0; 64];
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            match theirs.read(&mut chunk).await.unwrap() {
                0 => break got,
                n => got.extend_from_slice(&chunk[..n]),
            }
        }
    });
    stream.write_all(&[7; 1024]).await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(reader.await.unwrap(), vec![7; 1024]);
}
