//! `HttpWebhookSender` against hand-written HTTP/1.1 responders on 127.0.0.1 and fake resolvers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ledgix_core::notify::address::UrlPolicy;
use ledgix_core::notify::{OutboundPost, SendError, WebhookSender};
use ledgix_notify::{HttpWebhookSender, Resolve, DEFAULT_TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const STRICT: UrlPolicy = UrlPolicy {
    allow_loopback: false,
};
const DEV: UrlPolicy = UrlPolicy {
    allow_loopback: true,
};
const SIGNATURE: &str = "sha256=5e3c0ffee5e3c0ffee5e3c0ffee5e3c0ffee";
const BODY: &[u8] = br#"{"event":"review.pending","secret_arg":"topsecret"}"#;

/// A request as the server read it.
#[derive(Debug)]
struct Received {
    request_line: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// What a test server does with a connection.
#[derive(Clone)]
enum Behaviour {
    /// Read the request, record it, answer with these bytes, close.
    Answer(Vec<u8>),
    /// Read the request, then say nothing and keep the connection open.
    Silent,
    /// Record the first bytes the client sends (a TLS ClientHello), then close.
    FirstBytes,
}

struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    received: mpsc::UnboundedReceiver<Received>,
    first_bytes: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl Server {
    async fn start(behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let (tx, received) = mpsc::unbounded_channel();
        let (bytes_tx, first_bytes) = mpsc::unbounded_channel();
        let count = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (tx, bytes_tx, behaviour) = (tx.clone(), bytes_tx.clone(), behaviour.clone());
                tokio::spawn(async move {
                    if let Behaviour::FirstBytes = behaviour {
                        let mut buf = vec![0u8; 4096];
                        let n = stream.read(&mut buf).await.unwrap_or(0);
                        buf.truncate(n);
                        let _ = bytes_tx.send(buf);
                        return;
                    }
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    let _ = tx.send(request);
                    match behaviour {
                        Behaviour::Answer(bytes) => {
                            let _ = stream.write_all(&bytes).await;
                            let _ = stream.shutdown().await;
                        }
                        Behaviour::Silent => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            drop(stream);
                        }
                        Behaviour::FirstBytes => {}
                    }
                });
            }
        });
        Server {
            addr,
            connections,
            received,
            first_bytes,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(data[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some(Received {
        request_line,
        headers,
        body,
    })
}

fn answer(status_line: &str, extra_headers: &str, body: &str) -> Behaviour {
    Behaviour::Answer(
        format!(
            "HTTP/1.1 {status_line}\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn post_to(url: String) -> OutboundPost {
    OutboundPost {
        url,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-ledgix-event".into(), "review.pending".into()),
            ("x-ledgix-delivery".into(), "dl_0001".into()),
            ("x-ledgix-signature".into(), SIGNATURE.into()),
        ],
        body: BODY.to_vec(),
    }
}

/// Answers with fixed addresses, counting calls.
struct Fixed {
    ips: Vec<IpAddr>,
    calls: AtomicUsize,
}

impl Fixed {
    fn new(ips: &[&str]) -> Arc<Fixed> {
        Arc::new(Fixed {
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            calls: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Resolve for Fixed {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        assert_eq!(
            host, "hooks.example.test",
            "the resolver is asked for the URL's host"
        );
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect())
    }
}

/// A public address for the first call, loopback afterwards: DNS rebinding.
struct Rebinding {
    calls: AtomicUsize,
}

#[async_trait]
impl Resolve for Rebinding {
    async fn resolve(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let ip: IpAddr = if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            "93.184.216.34".parse().unwrap()
        } else {
            "127.0.0.1".parse().unwrap()
        };
        Ok(vec![SocketAddr::new(ip, port)])
    }
}

struct Failing;

#[async_trait]
impl Resolve for Failing {
    async fn resolve(&self, _host: &str, _port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Err(std::io::Error::other("NXDOMAIN"))
    }
}

fn sender(policy: UrlPolicy) -> HttpWebhookSender {
    HttpWebhookSender::new(policy)
        .unwrap()
        .with_timeout(Duration::from_secs(2))
}

fn sender_with(policy: UrlPolicy, resolver: Arc<dyn Resolve>) -> HttpWebhookSender {
    HttpWebhookSender::with_resolver(policy, resolver)
        .unwrap()
        .with_timeout(Duration::from_secs(2))
}

fn assert_refused(result: Result<impl std::fmt::Debug, SendError>, what: &str) {
    assert!(
        matches!(result, Err(SendError::Refused(_))),
        "{what}: {result:?}"
    );
}

fn assert_no_secrets(error: &SendError) {
    let text = error.to_string();
    assert!(!text.contains(SIGNATURE), "{text}");
    assert!(!text.contains("topsecret"), "{text}");
    assert!(!text.contains("/inbox"), "the path is not named: {text}");
}

#[tokio::test]
async fn a_loopback_receiver_gets_the_post_under_the_development_flag() {
    let mut server = Server::start(answer("204 No Content", "", "")).await;
    let sender = sender(DEV);
    let url = format!("http://127.0.0.1:{}/inbox?x=1#frag", server.port());
    assert_eq!(sender.check(&url).await, Ok(()));
    assert_eq!(sender.post(&post_to(url)).await, Ok(204));

    let got = server.received.recv().await.unwrap();
    assert_eq!(got.request_line, "POST /inbox?x=1 HTTP/1.1");
    assert_eq!(got.headers["x-ledgix-signature"], SIGNATURE);
    assert_eq!(got.headers["x-ledgix-event"], "review.pending");
    assert_eq!(got.headers["x-ledgix-delivery"], "dl_0001");
    assert_eq!(got.headers["content-type"], "application/json");
    assert_eq!(got.headers["host"], format!("127.0.0.1:{}", server.port()));
    assert_eq!(got.body, BODY);
}

#[tokio::test]
async fn an_error_status_is_returned_as_is() {
    let mut server = Server::start(answer("500 Internal Server Error", "", "boom")).await;
    let url = format!("http://127.0.0.1:{}/inbox", server.port());
    assert_eq!(sender(DEV).post(&post_to(url)).await, Ok(500));
    assert_eq!(server.received.recv().await.unwrap().body, BODY);
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let elsewhere = Server::start(answer("200 OK", "", "")).await;
    let location = format!("Location: http://127.0.0.1:{}/inbox\r\n", elsewhere.port());
    let mut server = Server::start(answer("302 Found", &location, "")).await;
    let url = format!("http://127.0.0.1:{}/inbox", server.port());
    assert_eq!(sender(DEV).post(&post_to(url)).await, Ok(302));
    assert!(server.received.recv().await.is_some());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(elsewhere.connections(), 0, "the redirect was followed");
}

#[tokio::test]
async fn loopback_is_refused_without_the_flag_and_never_connected_to() {
    let server = Server::start(answer("204 No Content", "", "")).await;
    let sender = sender(STRICT);
    for url in [
        format!("http://127.0.0.1:{}/inbox", server.port()),
        format!("https://127.0.0.1:{}/inbox", server.port()),
        format!("https://[::ffff:127.0.0.1]:{}/inbox", server.port()),
    ] {
        assert_refused(sender.check(&url).await, &url);
        assert_refused(sender.post(&post_to(url.clone())).await, &url);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn names_resolving_to_internal_addresses_are_refused_by_check_and_post() {
    for ips in [
        &["10.0.0.5"][..],
        &["169.254.169.254"][..],
        &["93.184.216.34", "127.0.0.1"][..],
        &["fd00:ec2::254"][..],
    ] {
        let resolver = Fixed::new(ips);
        let sender = sender_with(STRICT, resolver.clone());
        let url = "https://hooks.example.test/inbox";
        assert_refused(sender.check(url).await, &format!("check {ips:?}"));
        assert_eq!(resolver.calls(), 1, "{ips:?}");
        let result = sender.post(&post_to(url.into())).await;
        if let Err(e) = &result {
            assert_no_secrets(e);
        }
        assert_refused(result, &format!("post {ips:?}"));
    }
}

#[tokio::test]
async fn a_name_rebound_to_loopback_after_the_check_is_refused_at_connect_time() {
    // Were the connection made, it would reach this server (the rebound address, same port).
    let server = Server::start(answer("204 No Content", "", "")).await;
    let resolver = Arc::new(Rebinding {
        calls: AtomicUsize::new(0),
    });
    let sender = sender_with(STRICT, resolver.clone());
    let url = format!("https://hooks.example.test:{}/inbox", server.port());
    let result = sender.post(&post_to(url)).await;
    assert_eq!(
        resolver.calls.load(Ordering::SeqCst),
        2,
        "resolved once to check, once to connect"
    );
    assert_refused(result, "rebound name");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn every_new_connection_resolves_and_checks_again() {
    // `localhost` over http is allowed under the flag; the server closes each connection, so the second post
    // needs a new one.
    let mut server = Server::start(answer("200 OK", "", "ok")).await;
    let resolver = Arc::new(LocalhostOnly {
        calls: AtomicUsize::new(0),
    });
    let sender = sender_with(DEV, resolver.clone());
    let url = format!("http://localhost:{}/inbox", server.port());
    assert_eq!(sender.post(&post_to(url.clone())).await, Ok(200));
    assert_eq!(sender.post(&post_to(url)).await, Ok(200));
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 4);
    assert_eq!(server.connections(), 2);
    assert!(server.received.recv().await.is_some());
    assert!(server.received.recv().await.is_some());
}

struct LocalhostOnly {
    calls: AtomicUsize,
}

#[async_trait]
impl Resolve for LocalhostOnly {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        assert_eq!(host, "localhost");
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
    }
}

#[tokio::test]
async fn tls_names_the_host_not_the_address() {
    // hooks.example.test -> 127.0.0.1 (allowed under the flag): the server sees a ClientHello whose SNI is the
    // host name; it is no TLS server, so the handshake fails, as a transport error without request data.
    let mut server = Server::start(Behaviour::FirstBytes).await;
    let sender = sender_with(DEV, Fixed::new(&["127.0.0.1"]));
    let url = format!("https://hooks.example.test:{}/inbox", server.port());
    let result = sender.post(&post_to(url)).await;
    let hello = server.first_bytes.recv().await.unwrap();
    assert_eq!(hello.first(), Some(&0x16), "a TLS handshake record");
    assert!(
        hello.windows(18).any(|w| w == b"hooks.example.test"),
        "SNI carries the host name"
    );
    match result {
        Err(e @ SendError::Transport(_)) => assert_no_secrets(&e),
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = Server::start(Behaviour::Silent).await;
    let sender = HttpWebhookSender::new(DEV)
        .unwrap()
        .with_timeout(Duration::from_millis(800));
    let url = format!("http://127.0.0.1:{}/inbox", server.port());
    let started = Instant::now();
    let result = sender.post(&post_to(url)).await;
    let elapsed = started.elapsed();
    match &result {
        Err(e @ SendError::Transport(message)) => {
            assert!(message.contains("within"), "{message}");
            assert_no_secrets(e);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        elapsed >= Duration::from_millis(700) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    assert_eq!(DEFAULT_TIMEOUT, Duration::from_secs(10));
}

#[tokio::test]
async fn a_huge_body_is_not_waited_for() {
    // Promises 10 MB, sends 256 KiB, then stalls: the status comes back once 64 KiB are drained.
    let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', 256 * 1024));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_request(&mut stream).await;
        let _ = stream.write_all(&bytes).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let sender = HttpWebhookSender::new(DEV)
        .unwrap()
        .with_timeout(Duration::from_secs(3));
    let started = Instant::now();
    let result = sender
        .post(&post_to(format!("http://127.0.0.1:{port}/inbox")))
        .await;
    assert_eq!(result, Ok(200));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dns_failures_and_empty_answers_are_transport_errors() {
    let url = "https://hooks.example.test/inbox";
    let failing = sender_with(STRICT, Arc::new(Failing));
    assert!(matches!(
        failing.check(url).await,
        Err(SendError::Transport(_))
    ));
    assert!(matches!(
        failing.post(&post_to(url.into())).await,
        Err(SendError::Transport(_))
    ));
    let empty = sender_with(STRICT, Fixed::new(&[]));
    assert!(matches!(
        empty.check(url).await,
        Err(SendError::Transport(_))
    ));
}

#[tokio::test]
async fn bad_urls_are_refused_without_resolving() {
    let resolver = Fixed::new(&["93.184.216.34"]);
    let sender = sender_with(STRICT, resolver.clone());
    for url in [
        "http://hooks.example.test/inbox",
        "ftp://hooks.example.test/inbox",
        "https://user:pw@hooks.example.test/inbox",
        "not a url",
        "https://169.254.169.254/latest/meta-data",
    ] {
        assert_refused(sender.check(url).await, url);
        assert_refused(sender.post(&post_to(url.into())).await, url);
    }
    assert_eq!(resolver.calls(), 0);
    // A public answer passes the check.
    assert_eq!(
        sender.check("https://hooks.example.test/inbox").await,
        Ok(())
    );
}

#[tokio::test]
async fn invalid_header_values_are_rejected_without_being_named() {
    let sender = sender_with(DEV, Fixed::new(&["127.0.0.1"]));
    let mut request = post_to("http://127.0.0.1:9/inbox".into());
    request
        .headers
        .push(("x-ledgix-signature".into(), "topsecret\r\nx: y".into()));
    match sender.post(&request).await {
        Err(e @ SendError::Transport(_)) => assert_no_secrets(&e),
        other => panic!("expected a transport error, got {other:?}"),
    }
}
