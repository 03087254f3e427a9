//! The TLS stream against rustls's own client over real sockets: the handshake, data both
//! ways in sizes that span records and reads, close_notify both ways, and no buffer kept
//! while idle.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::*;

fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    configs_with(rustls::DEFAULT_VERSIONS)
}

/// A server and a client config, the client speaking only `versions`.
fn configs_with(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.der().to_vec()))
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

/// A client connection to a server that accepts with [`accept_tls`].
async fn pair() -> (ClientStream, tokio::task::JoinHandle<TlsStream>) {
    pair_with(configs(), false).await
}

/// A client connection with `configs` to a server that accepts with [`accept_tls`]; with
/// `trickle`, what the client sends reaches the server one byte per TCP segment.
async fn pair_with(
    (server, client): (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>),
    trickle: bool,
) -> (ClientStream, tokio::task::JoinHandle<TlsStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut addr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        accept_tls(tcp, server).await.unwrap()
    });
    if trickle {
        addr = trickling_proxy(addr).await;
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    (tls, accepted)
}

#[tokio::test]
async fn data_flows_both_ways_in_every_size_and_nothing_is_kept_while_idle() {
    let (mut client, accepted) = pair().await;
    let mut server = accepted.await.unwrap();
    for len in [1usize, 100, 5_000, 16_384, 16_385, 70_000, 200_000] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let sending = {
            let data = data.clone();
            tokio::spawn(async move {
                client.write_all(&data).await.unwrap();
                client.flush().await.unwrap();
                client
            })
        };
        let mut got = vec![0u8; len];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, data, "{len} bytes to the server");
        client = sending.await.unwrap();
        // And back, through a vectored write of a header and a payload.
        let header = [0x81u8, 0x7e];
        let slices = [IoSlice::new(&header), IoSlice::new(&data)];
        let mut written = 0;
        let total = header.len() + data.len();
        while written < total {
            let mut skip = written;
            let mut rest = Vec::new();
            for slice in &slices {
                if skip >= slice.len() {
                    skip -= slice.len();
                } else {
                    rest.push(IoSlice::new(&slice[skip..]));
                    skip = 0;
                }
            }
            written += server.write_vectored(&rest).await.unwrap();
        }
        server.flush().await.unwrap();
        let mut back = vec![0u8; total];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back[..2], &header);
        assert_eq!(&back[2..], &data[..], "{len} bytes to the client");
        assert!(
            server.incoming.capacity() == 0
                && server.plaintext.capacity() == 0
                && server.outgoing.capacity() == 0,
            "{server:?} keeps buffers while idle"
        );
    }
    // The server closes: close_notify, then the end of the stream, which the client reads as
    // a clean end (rustls would report a truncation otherwise).
    server.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn the_clients_close_notify_is_the_end_of_the_stream() {
    let (mut client, accepted) = pair().await;
    let mut server = accepted.await.unwrap();
    client.write_all(b"last words").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), server.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"last words");
}

#[tokio::test]
async fn a_peer_that_is_not_tls_is_refused() {
    let (server, _) = configs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        accept_tls(tcp, server).await.map(|_| ())
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), accepting)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_err());
    drop(tcp);
}

/// A proxy to `target` that forwards what its client sends one byte per segment (so that the
/// server sees every record in pieces) and what the target sends as it comes.
async fn trickling_proxy(target: std::net::SocketAddr) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let upstream = TcpStream::connect(target).await.unwrap();
        upstream.set_nodelay(true).unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut up_read, mut up_write) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut up_read, &mut client_write).await;
            let _ = client_write.shutdown().await;
        });
        let mut byte = [0u8; 1];
        while let Ok(1) = client_read.read(&mut byte).await {
            if up_write.write_all(&byte).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let _ = up_write.shutdown().await;
    });
    addr
}

/// Sends `data` from the client and reads it at the server, then the other way round.
async fn echo_both_ways(client: &mut ClientStream, server: &mut TlsStream, data: &[u8]) {
    client.write_all(data).await.unwrap();
    client.flush().await.unwrap();
    let mut got = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(20), server.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, data, "to the server");
    server.write_all(data).await.unwrap();
    server.flush().await.unwrap();
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(20), client.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, data, "to the client");
}

#[tokio::test]
async fn records_that_arrive_a_byte_at_a_time_are_put_together() {
    let (mut client, accepted) = pair_with(configs(), true).await;
    let mut server = accepted.await.unwrap();
    let data: Vec<u8> = (0..3_000).map(|i| (i % 253) as u8).collect();
    echo_both_ways(&mut client, &mut server, &data).await;
    assert!(
        server.incoming.capacity() == 0,
        "{server:?} keeps a partial record"
    );
}

#[tokio::test]
async fn a_tls_1_2_client_is_served() {
    let (mut client, accepted) = pair_with(configs_with(&[&rustls::version::TLS12]), false).await;
    let mut server = accepted.await.unwrap();
    assert_eq!(
        client.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    echo_both_ways(&mut client, &mut server, b"over TLS 1.2").await;
    echo_both_ways(&mut client, &mut server, &[7u8; 40_000]).await;
}

#[tokio::test]
async fn key_updates_the_client_asks_for_are_answered() {
    let (mut client, accepted) = pair().await;
    let mut server = accepted.await.unwrap();
    for round in 0..3u8 {
        // The client's KeyUpdate asks the server to update its keys too: what the server
        // sends after it must be readable with the client's new receiving keys.
        client.get_mut().1.refresh_traffic_keys().unwrap();
        echo_both_ways(&mut client, &mut server, &[round; 1_000]).await;
    }
}

#[tokio::test]
async fn a_handshake_message_sent_a_byte_per_record_is_refused_past_the_bound() {
    let (server, _) = configs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        accept_tls(tcp, server).await.map(|_| ())
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // A ClientHello that says it is 65,535 bytes long, then its body one byte per record:
    // rustls keeps every record until the message is whole, 6 bytes for each byte of it.
    let mut flood = vec![22u8, 3, 1, 0, 4, 1, 0, 0xff, 0xff];
    let records = 20_000;
    for _ in 0..records {
        flood.extend_from_slice(&[22, 3, 1, 0, 1, 0]);
    }
    assert!(
        flood.len() > MAX_INCOMING,
        "the flood stays within the bound"
    );
    // The server refuses before the message is whole; it may reset the rest of the flood.
    let _ = tcp.write_all(&flood).await;
    let result = tokio::time::timeout(Duration::from_secs(10), accepting)
        .await
        .expect("the server still waits for the message")
        .unwrap();
    let err = result.expect_err("the handshake went on");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
}

#[tokio::test]
async fn a_record_cut_short_by_the_end_of_the_stream_is_an_error_not_the_end() {
    let (client, accepted) = pair().await;
    let mut server = accepted.await.unwrap();
    let (mut tcp, _) = client.into_inner();
    // The header of an application-data record of 50 bytes, and 3 of them.
    tcp.write_all(&[23, 3, 3, 0, 50, 1, 2, 3]).await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut got = Vec::new();
    let err = tokio::time::timeout(Duration::from_secs(5), server.read_to_end(&mut got))
        .await
        .unwrap()
        .expect_err("a truncated stream read as its end");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    // And the connection stays failed.
    assert!(server.write_all(b"more").await.is_err());
}
