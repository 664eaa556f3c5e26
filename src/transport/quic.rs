//! QUIC: quinn 0.11 + rustls 0.23 (ring, TLS 1.3 only) + a self-signed rcgen
//! certificate made by the daemon.
//!
//! Trust comes only through ssh: the bootstrap prints the certificate's SHA-256
//! fingerprint and a fresh 256-bit secret, and the client pins the first and
//! proves the second. The proof is HMAC-SHA256(secret, TLS exporter): the
//! secret never crosses the wire, and a proof is bound to its own TLS session,
//! so it is worthless on any other connection. No CA, no TOFU.
//!
//! The client binds the unspecified address, so a new local address (roaming)
//! or a new NAT mapping is just path migration for the server.
//!
//! A link is two bidirectional streams: output, and a control lane sent with
//! a higher priority, so that a pong or the tty modes go out in the next
//! packet instead of behind the output still queued in quinn (the core's
//! `frame::Laned` decides which frame is which). A client opens the control
//! stream only when the server allows two, and says so with a marker frame
//! first on both: each side still talks to a peer that knows one stream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::FutureExt;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::proto::frame::AuthProof;
use crate::transport::framed::{add_control_lane, split, FrameReader, FrameWriter, Link, LinkKind};

const ALPN: &[u8] = b"abide/1";
const EXPORTER_LABEL: &[u8] = b"EXPORTER-abide-session-proof-v1";
/// What the server side presents in its certificate; the client checks the
/// fingerprint, never the name.
pub(crate) const CERT_NAME: &str = "abide";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

pub fn make_proof(secret: &[u8; 32], exporter: &[u8; 32]) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, exporter);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Constant-time check of a client's proof.
pub fn verify_proof(secret: &[u8; 32], exporter: &[u8; 32], mac: &[u8; 32]) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, exporter, mac).is_ok()
}

fn exporter(conn: &quinn::Connection) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, b"")
        .map_err(|_| anyhow!("TLS exporter unavailable"))?;
    Ok(out)
}

/// Timers shared by both ends. Liveness is abide's own business (pings every
/// 250 ms, see `proto::resume::Timing::QUIC`); QUIC's idle timeout only
/// reclaims connections nobody uses any more.
fn transport_config(idle: Duration) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(idle.try_into().expect("idle timeout in range")));
    // Keeps a 10 s UDP NAT mapping open even if the session layer were quiet.
    t.keep_alive_interval(Some(Duration::from_secs(2)));
    // Interactive traffic: a lower first guess makes the first retransmissions
    // of a handshake come sooner on a lossy path.
    t.initial_rtt(Duration::from_millis(100));
    Arc::new(t)
}

/// The server's transport limits. Until a peer has proved a grant's secret it
/// is unauthenticated, so what it can make the daemon hold is kept small:
/// two bidirectional streams (a link's output and control lanes, all abide
/// uses), no unidirectional streams, no datagrams, and receive windows that
/// bound what it can buffer (the connection's window bounds both streams
/// together). After the proof the same small windows are enough: the client
/// only sends keystrokes, acks and pings (output flows the other way).
fn server_transport_config() -> Arc<quinn::TransportConfig> {
    // Test knob, not a setting: a connection whose client went away holds
    // its grant until it idles out, which a test of grant expiry shortens.
    let idle = std::env::var("ABIDE_TEST_QUIC_IDLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_millis);
    let mut t =
        Arc::try_unwrap(transport_config(idle)).unwrap_or_else(|_| unreachable!("fresh config"));
    t.max_concurrent_bidi_streams(MAX_STREAMS.into())
        .max_concurrent_uni_streams(0u32.into())
        .stream_receive_window(SERVER_STREAM_WINDOW.into())
        .receive_window(SERVER_CONN_WINDOW.into())
        .datagram_receive_buffer_size(None);
    Arc::new(t)
}

/// Streams a client may open: a link's output and control lanes.
pub const MAX_STREAMS: u32 = 2;

/// The first frame on both streams of a two-lane link. Not a hello (whose
/// first byte is the low byte of `frame::MAGIC` with the varint bit set).
const LANES_MARKER: &[u8] = b"\xffabide-lanes-1";

/// A higher priority is sent first (quinn's `SendStream::set_priority`).
const CONTROL_PRIORITY: i32 = 1;

/// Receive windows of the server (bytes a client may have in flight to it).
pub const SERVER_STREAM_WINDOW: u32 = 64 * 1024;
pub const SERVER_CONN_WINDOW: u32 = 128 * 1024;

/// Connections that are handshaking or have not proved a secret yet, at most;
/// beyond this new ones are refused (like sshd's MaxStartups).
pub const MAX_UNPROVED: usize = 32;

/// With this many unproved connections, a peer must first show it can receive
/// at its address (a QUIC Retry): spoofed Initials then cost nothing.
pub const RETRY_ABOVE: usize = 4;

/// From the first packet to a valid proof, at most.
pub const PROOF_DEADLINE: Duration = Duration::from_secs(5);

/// The daemon's QUIC endpoint.
pub struct ServerEndpoint {
    pub port: u16,
    pub fingerprint: String,
    _endpoint: quinn::Endpoint,
}

/// `[::]:port` with IPV6_V6ONLY off, so one socket answers IPv4 (as
/// ::ffff:a.b.c.d) and IPv6 clients alike, and a client roaming between the
/// two families reaches the same endpoint (whatever net.ipv6.bindv6only says).
fn bind_dual_stack(port: u16) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(false)?;
    let addr = std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn bind_udp(range: (u16, u16)) -> Result<std::net::UdpSocket> {
    let mut last = None;
    for port in range.0..=range.1 {
        // Dual-stack when the host has IPv6, IPv4 otherwise.
        if let Ok(s) = bind_dual_stack(port) {
            return Ok(s);
        }
        match std::net::UdpSocket::bind(("0.0.0.0", port)) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow!(
        "no free UDP port in {}-{}: {}",
        range.0,
        range.1,
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// A QUIC server endpoint on a port of `range`, with a fresh self-signed
/// certificate: the endpoint, its port and the certificate's fingerprint.
pub(crate) fn bind_server(range: (u16, u16)) -> Result<(quinn::Endpoint, u16, String)> {
    let certified = rcgen::generate_simple_self_signed(vec![CERT_NAME.to_string()])
        .context("cannot make the QUIC certificate")?;
    let cert_der = CertificateDer::from(certified.cert.der().to_vec());
    let fingerprint = sha256_hex(&cert_der);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    server.transport_config(server_transport_config());
    server.migration(true);
    // Connection attempts queued before we look at them, and what they may
    // buffer (quinn's defaults, 65536 and 100 MiB, are for busy public servers).
    server
        .max_incoming(4 * MAX_UNPROVED)
        .incoming_buffer_size(64 * 1024)
        .incoming_buffer_size_total(2 * 1024 * 1024);
    let socket = bind_udp(range)?;
    let port = socket.local_addr()?.port();
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    Ok((endpoint, port, fingerprint))
}

/// What the server learns of an accepted QUIC connection before its channel
/// starts: the value a client's proof must be bound to, and whom to tell once
/// it has proved it (the endpoint then lifts its pre-proof limits).
pub struct Unproved {
    pub exporter: [u8; 32],
    pub proved: tokio::sync::oneshot::Sender<()>,
}

/// The server's side of one connection: given its frames, runs the channel
/// until it ends. The transport knows nothing of what a channel does.
pub type ServeFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;
pub type Serve = Arc<dyn Fn(FrameReader, FrameWriter, Unproved) -> ServeFuture + Send + Sync>;

impl ServerEndpoint {
    pub fn start(serve: Serve, range: (u16, u16)) -> Result<ServerEndpoint> {
        let (endpoint, port, fingerprint) = bind_server(range)?;
        tracing::info!(port, %fingerprint, "QUIC endpoint listening");
        let ep = endpoint.clone();
        tokio::spawn(async move {
            let unproved = Arc::new(tokio::sync::Semaphore::new(MAX_UNPROVED));
            while let Some(incoming) = ep.accept().await {
                let busy = MAX_UNPROVED - unproved.available_permits();
                if busy >= RETRY_ABOVE
                    && !incoming.remote_address_validated()
                    && incoming.may_retry()
                {
                    let _ = incoming.retry();
                    continue;
                }
                let Ok(permit) = unproved.clone().try_acquire_owned() else {
                    incoming.refuse();
                    continue;
                };
                let serve = serve.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(serve, incoming, permit).await {
                        tracing::debug!("QUIC connection: {e:#}");
                    }
                });
            }
        });
        Ok(ServerEndpoint {
            port,
            fingerprint,
            _endpoint: endpoint,
        })
    }
}

async fn serve_connection(
    serve: Serve,
    incoming: quinn::Incoming,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + PROOF_DEADLINE;
    let conn = tokio::time::timeout_at(deadline, incoming)
        .await
        .context("no handshake within the proof deadline")??;
    let exporter = exporter(&conn)?;
    // Accept one stream; a client that opens none in time is dropped.
    let (send, recv) = tokio::time::timeout_at(deadline, conn.accept_bi())
        .await
        .context("no stream within the proof deadline")??;
    let (mut rx, mut tx) = split(recv, send);
    // A client with a control lane says so first; an older client's first
    // frame is its hello.
    let first = tokio::time::timeout_at(deadline, rx.next_raw())
        .await
        .context("no frame within the proof deadline")??;
    match first {
        None => return Ok(()),
        Some(b) if b[..] == *LANES_MARKER => {
            let (csend, mut crecv) = tokio::time::timeout_at(deadline, conn.accept_bi())
                .await
                .context("no control stream within the proof deadline")??;
            csend.set_priority(CONTROL_PRIORITY)?;
            let mut marker = vec![0u8; marker_frame().len()];
            tokio::time::timeout_at(deadline, crecv.read_exact(&mut marker))
                .await
                .context("no frame within the proof deadline")??;
            if marker != marker_frame() {
                bail!("the control stream does not start with the lanes marker");
            }
            add_control_lane(&mut rx, &mut tx, crecv, csend);
        }
        Some(b) => rx.unread(b),
    }
    let (proved_tx, proved_rx) = tokio::sync::oneshot::channel();
    let serve = serve(
        rx,
        tx,
        Unproved {
            exporter,
            proved: proved_tx,
        },
    );
    tokio::pin!(serve);
    // The slot is held until the proof, which must come by the deadline.
    let result = tokio::select! {
        r = &mut serve => r,
        proved = tokio::time::timeout_at(deadline, proved_rx) => match proved {
            Ok(Ok(())) => {
                drop(permit);
                serve.await
            }
            Ok(Err(_)) => serve.await, // refused: the channel is ending
            Err(_) => Err(anyhow!("no proof within {PROOF_DEADLINE:?}")),
        },
    };
    // Let the last frame (an error, "exited", "detached") reach the client
    // before closing: close() discards whatever is still unsent.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
    conn.close(0u32.into(), b"done");
    result
}

/// Accepts exactly one certificate: the one whose SHA-256 the bootstrap gave us.
#[derive(Debug)]
struct PinnedCert {
    fingerprint: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
    mismatch: Arc<AtomicBool>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = sha256_hex(end_entity);
        // Both are public values; equality need not be constant-time.
        if got.eq_ignore_ascii_case(&self.fingerprint) {
            Ok(ServerCertVerified::assertion())
        } else {
            self.mismatch.store(true, Ordering::SeqCst);
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The server must still prove it holds the pinned certificate's key.
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Everything the client needs to reach one granted session.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub fingerprint: String,
    pub grant_id: [u8; 16],
    pub secret: [u8; 32],
}

pub(crate) fn client_config(
    fingerprint: &str,
    mismatch: Arc<AtomicBool>,
) -> Result<quinn::ClientConfig> {
    let provider = provider();
    let verifier = PinnedCert {
        fingerprint: fingerprint.to_string(),
        provider: provider.clone(),
        mismatch,
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut cfg = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    cfg.transport_config(transport_config(Duration::from_secs(30)));
    Ok(cfg)
}

struct QuicOwner {
    conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

impl Drop for QuicOwner {
    fn drop(&mut self) {
        self.conn.close(0u32.into(), b"replaced");
    }
}

/// One connection attempt, on a fresh UDP socket: a new source port is a new
/// NAT mapping, which also gets past a middlebox that black-holed the old flow.
/// A client endpoint on a fresh UDP socket of `to`'s address family, pinned
/// to `fingerprint`; the flag is set when a handshake fails on a certificate
/// that is not the pinned one.
pub(crate) fn client_endpoint(
    to: SocketAddr,
    fingerprint: &str,
) -> Result<(quinn::Endpoint, Arc<AtomicBool>)> {
    let bind: SocketAddr = if to.is_ipv6() {
        "[::]:0".parse()?
    } else {
        "0.0.0.0:0".parse()?
    };
    let mut endpoint = quinn::Endpoint::client(bind).context("cannot open a UDP socket")?;
    let mismatch = Arc::new(AtomicBool::new(false));
    endpoint.set_default_client_config(client_config(fingerprint, mismatch.clone())?);
    Ok((endpoint, mismatch))
}

/// Connects with a control lane when the server allows it.
pub async fn connect(target: &Target) -> Result<Link> {
    connect_lanes(target, true).await
}

/// `lanes`: open the control lane (when the server allows it); without it
/// every frame shares the output stream (tests measure the difference).
pub async fn connect_lanes(target: &Target, lanes: bool) -> Result<Link> {
    let (endpoint, mismatch) = client_endpoint(target.addr, &target.fingerprint)?;
    let connecting = endpoint.connect(target.addr, CERT_NAME)?;
    let conn = match connecting.await {
        Ok(c) => c,
        Err(e) => {
            if mismatch.load(Ordering::SeqCst) {
                // Typed: the link policy never falls back from this one.
                return Err(anyhow::Error::new(
                    crate::proto::policy::ConnectError::FingerprintMismatch(format!(
                        "{} is not the server the ssh bootstrap described; refusing to connect",
                        target.addr
                    )),
                ));
            }
            return Err(anyhow!(e).context(format!("QUIC handshake with {}", target.addr)));
        }
    };
    let proof = make_proof(&target.secret, &exporter(&conn)?);
    let (mut send, recv) = conn.open_bi().await.context("opening the QUIC stream")?;
    // Ready at once when the server's limit allows a second stream (an older
    // server allows one: then everything shares the first).
    let control = match lanes {
        true => conn.open_bi().now_or_never().transpose()?,
        false => None,
    };
    let (rx, tx) = match control {
        Some((mut csend, crecv)) => {
            csend.set_priority(CONTROL_PRIORITY)?;
            let marker = marker_frame();
            send.write_all(&marker).await?;
            csend.write_all(&marker).await?;
            let (mut rx, mut tx) = split(recv, send);
            add_control_lane(&mut rx, &mut tx, crecv, csend);
            (rx, tx)
        }
        None => split(recv, send),
    };
    Ok(Link {
        rx,
        tx,
        kind: LinkKind::Quic,
        auth: Some(AuthProof {
            grant_id: target.grant_id,
            mac: proof,
        }),
        _owner: Some(Box::new(QuicOwner {
            conn,
            _endpoint: endpoint,
        })),
    })
}

/// [`LANES_MARKER`] as a frame: its length, then the body.
fn marker_frame() -> Vec<u8> {
    let mut f = (LANES_MARKER.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(LANES_MARKER);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_secret_and_connection() {
        let s = [7u8; 32];
        let e = [9u8; 32];
        let mac = make_proof(&s, &e);
        assert!(verify_proof(&s, &e, &mac));
        assert!(!verify_proof(&[8u8; 32], &e, &mac));
        assert!(!verify_proof(&s, &[1u8; 32], &mac));
    }
}
