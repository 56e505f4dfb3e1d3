//! The connector against endpoints that answer oddly on purpose: a redirect
//! to another host (which would receive the signed body), a redirect to plain
//! HTTP, and answers too large to buffer. Raw TCP servers on loopback.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::{Connector, ConnectorError, Credentials, DescribeFilter, InstanceName};
use cloudbroker_connector_ec2query::client::MAX_ANSWER_BYTES;
use cloudbroker_connector_ec2query::Ec2QueryConnector;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers every request with `answer` (head, then a body
/// produced in chunks) and counts the requests it got.
async fn server(head: String, body_chunks: usize, chunk: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            let head = head.clone();
            let chunk = chunk.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = sock.read(&mut buf).await;
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for _ in 0..body_chunks {
                    if sock.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/"), hits)
}

fn connector(endpoint: &str) -> Ec2QueryConnector {
    let pairs = BTreeMap::from([("endpoint".to_string(), endpoint.to_string()), ("timeout.seconds".to_string(), "20".to_string())]);
    Ec2QueryConnector::from_params(InstanceName::parse("one-lab").unwrap(), &ParamValues::new(pairs)).unwrap()
}

fn creds() -> Credentials {
    Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
}

#[tokio::test]
async fn redirects_are_not_followed_and_the_signed_body_goes_nowhere_else() {
    let (elsewhere, elsewhere_hits) = server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".into(), 0, vec![]).await;
    for status in ["301 Moved Permanently", "302 Found", "307 Temporary Redirect", "308 Permanent Redirect"] {
        let head = format!("HTTP/1.1 {status}\r\nLocation: {elsewhere}steal\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let (endpoint, hits) = server(head, 0, vec![]).await;
        let e = connector(&endpoint).describe_instances(&creds(), &DescribeFilter::default()).await.unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Cloud { code, message } if code == "Redirect" && message.contains("redirect")),
            "{status}: {e}"
        );
        assert!(!e.is_retryable());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0, "the redirect target received a request");
}

#[tokio::test]
async fn an_oversized_answer_is_refused_not_buffered() {
    // Declared too large: refused before reading.
    let head =
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", MAX_ANSWER_BYTES + 1);
    let (endpoint, _) = server(head, 0, vec![]).await;
    let e = connector(&endpoint).describe_instances(&creds(), &DescribeFilter::default()).await.unwrap_err();
    assert!(matches!(&e, ConnectorError::Cloud { code, .. } if code == "AnswerTooLarge"), "{e}");

    // Chunked, no length: refused once the cap is passed.
    let chunk = b"<x>".repeat(1 << 16);
    let framed = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk, b"\r\n".to_vec()].concat();
    let n = MAX_ANSWER_BYTES / (3 << 16) + 4;
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_string();
    let (endpoint, _) = server(head, n, framed).await;
    let e = connector(&endpoint).describe_instances(&creds(), &DescribeFilter::default()).await.unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
}
