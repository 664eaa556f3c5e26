//! Wire frames. Every transport (Unix socket, QUIC stream, ssh stdio) carries the
//! same frames: a 4-byte big-endian length, then a postcard-encoded body.
//!
//! postcard is compact, has a stable documented format, and (unlike bincode)
//! is maintained. Lengths are bounded before any allocation, and decoding never
//! panics on hostile input: the fuzz target `fuzz/fuzz_targets/frame_decode.rs`
//! holds us to that.

use serde::{Deserialize, Serialize};

pub use crate::attention::{AttentionEvent, Cursor, Summary};

/// Bumped on any incompatible change of the frames below. A peer that meets a
/// newer variant it cannot decode would otherwise reconnect forever, so even
/// variants added at the end of an enum that an older peer may receive count.
/// 2: `Down` gained tty modes, attention, the away summary, history and state
/// frames; `Request` gained watch and history.
pub const PROTOCOL_VERSION: u32 = 2;

/// "ABD" + a format byte: lets a peer tell an abide stream from anything else.
pub const MAGIC: u32 = 0x4142_4401;

/// The largest frame either side accepts. Output and input chunks are much
/// smaller (see [`MAX_CHUNK`]); the headroom is for snapshots, which are sent
/// in pieces no larger than this.
pub const MAX_FRAME_LEN: usize = 256 * 1024;

/// Written by `abide server --stdio` before the frame stream on ssh's
/// stdout, so the client knows ssh got in (and skips any login banner).
pub const STDIO_READY: &[u8] = b"\x00ABIDE-STDIO-1\x00";

/// The largest output or input payload put into one frame.
pub const MAX_CHUNK: usize = 32 * 1024;

/// The first frame on every channel to the daemon.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub magic: u32,
    pub version: u32,
    /// Required on network transports: proof that the peer holds a session secret.
    pub auth: Option<AuthProof>,
    pub request: Request,
}

impl Hello {
    pub fn new(request: Request) -> Self {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            auth: None,
            request,
        }
    }
}

/// `grant_id` names a grant made by `abide server --bootstrap`; `mac` is
/// HMAC-SHA256(secret, TLS exporter of this connection), so the secret never
/// crosses the wire and a proof is worthless on any other connection.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AuthProof {
    pub grant_id: [u8; 16],
    pub mac: [u8; 32],
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Become a session channel: `Up` frames follow from the client, `Down` from the server.
    Attach(AttachRequest),
    /// Reply: `Down::Sessions`.
    List,
    /// Reply: `Down::Done`.
    Kill { name: String },
    /// Reply: `Down::Done`, then the daemon exits.
    KillServer,
    /// Reply: `Down::Granted`. Used by `abide server --bootstrap` on the remote host.
    Grant(GrantRequest),
    /// Reply: `Down::SessionList` (`List` with each session's attention).
    ListAttention,
    /// Become a watch channel: `Down::Watching`, then `Down::Attention` as
    /// events happen; the client pings (`Up::Ping`) and may `Up::Detach`.
    Watch(WatchRequest),
    /// Reply: `Down::Done`. Ends the session once it has been detached this
    /// long (`None`: never).
    Expire {
        name: String,
        after_secs: Option<u64>,
    },
    /// Reply: `Down::Granted` with no session: the grant lets a network
    /// client `Watch` (`abide server --bootstrap --watch`).
    GrantWatch { port_range: (u16, u16) },
    /// Reply: `Down::History` pieces: the rows that scrolled off the session's
    /// screen (the newest `tail` of them), as text with attributes.
    History { name: String, tail: Option<u64> },
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchRequest {
    /// The last event this watcher has; `None`: only events from now on.
    pub after: Option<Cursor>,
}

/// A session's `ls` entry with what it did while nobody watched.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    pub info: SessionInfo,
    pub attention: Summary,
    /// Unix seconds since when no client has been attached.
    pub detached_since: Option<u64>,
    /// The session ends after being detached this long.
    pub expire_after: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    pub target: Target,
    /// Random per client process: the server keeps input de-duplication per client.
    pub client_id: u64,
    /// Where this client is; `None` for a client that has shown nothing yet.
    pub resume: Option<ResumePoint>,
    pub size: WinSize,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    pub session_id: u64,
    /// Every output byte before this offset is already on the client's terminal.
    pub offset: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An existing session by name; the most recently used one when `None`.
    Existing(Option<String>),
    /// A session known by its id (network clients resuming after a grant).
    Id(u64),
    /// Create a session, failing if the name is taken.
    Create(NewSession),
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct NewSession {
    pub name: Option<String>,
    /// Program and arguments; the user's login shell when empty.
    pub command: Vec<String>,
    /// Environment for the program (TERM, LANG, ...), taken from the client.
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GrantRequest {
    /// Attach to this session, or create it.
    pub target: Target,
    /// Create the session if `target` names one that does not exist.
    pub create_missing: Option<NewSession>,
    /// Inclusive UDP port range for the QUIC endpoint.
    pub port_range: (u16, u16),
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WinSize {
    pub rows: u16,
    pub cols: u16,
}

impl Default for WinSize {
    fn default() -> Self {
        WinSize { rows: 24, cols: 80 }
    }
}

/// Client → server, after an `Attach`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Up {
    Input {
        seq: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Output up to `offset` is on the client's terminal.
    Ack {
        offset: u64,
    },
    Resize(WinSize),
    Ping {
        nonce: u64,
    },
    Detach,
    /// The client has shown the program's exit (`Down::Exited`), so it has
    /// everything: the server may drop the exited session.
    ExitSeen,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Down {
    /// Must stay variant 0: a peer of another version can still read it.
    Error {
        kind: ErrorKind,
        message: String,
    },
    Sessions(Vec<SessionInfo>),
    Done,
    Granted(Grant),
    Attached(Attached),
    Output {
        offset: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A re-rendering of the screen and scrollback that stands for all output
    /// before `offset`, sent when the client's offset has left the log.
    /// Sent in pieces; `last` marks the final one.
    Snapshot {
        offset: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        last: bool,
    },
    /// Input up to and including `seq` has been written to the program.
    InputAck {
        seq: u64,
    },
    Pong {
        nonce: u64,
    },
    /// The program exited; all its output has been sent before this frame.
    /// `code`: its exit status, or minus the signal that killed it.
    Exited {
        code: i32,
    },
    /// The server ended this channel because the client detached (or another
    /// channel of the same client took over).
    Detached,
    /// The PTY's terminal modes, sent on attach and whenever they change:
    /// the client never predicts echo while the program reads a password.
    TtyModes(TtyModes),
    SessionList(Vec<SessionEntry>),
    /// A watch channel is open; `cursor` is the newest event now.
    Watching {
        cursor: Cursor,
    },
    Attention(AttentionEvent),
    /// Right after `Attached`: what happened while nobody was attached.
    Away(Summary),
    /// A piece of a session's history (`Request::History`); `last` ends it.
    History {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        last: bool,
    },
}

/// The PTY's termios flags that decide whether typed keys are echoed.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TtyModes {
    /// `ECHO`: the kernel echoes input.
    pub echo: bool,
    /// `ICANON`: the kernel edits lines (a program that turns it off draws its own echo).
    pub canonical: bool,
}

impl TtyModes {
    /// Line input that the kernel does not echo: a password prompt.
    pub fn hidden(&self) -> bool {
        !self.echo && self.canonical
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NoSuchSession,
    NameInUse,
    VersionMismatch,
    BadRequest,
    AuthFailed,
    Internal,
    /// A terminal size out of bounds (see `limits`).
    BadSize,
    /// The request is not allowed on this channel (a restricted `--stdio`).
    Forbidden,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub session_id: u64,
    pub name: String,
    /// The highest input sequence number of this client already applied.
    pub input_acked: u64,
    /// Output starts here (the resume offset, or the first offset kept).
    pub start_offset: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub session_id: u64,
    pub session_name: String,
    pub port: u16,
    /// Hex SHA-256 of the daemon's self-signed certificate (DER).
    pub fingerprint: String,
    pub grant_id: [u8; 16],
    pub secret: [u8; 32],
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: u64,
    pub name: String,
    pub command: Vec<String>,
    pub pid: u32,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds of the last output byte, if any.
    pub last_output: Option<u64>,
    pub clients: u32,
    pub size: WinSize,
    /// Total output bytes so far (the log's end offset).
    pub output_bytes: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_LEN}")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("not an abide peer (bad magic)")]
    BadMagic,
    #[error("protocol version mismatch: peer speaks {peer}, this abide speaks {PROTOCOL_VERSION}")]
    VersionMismatch { peer: u32 },
}

pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serialising our own frames into a Vec cannot fail: no maps with non-string
    // keys, no unsized sequences.
    postcard::to_allocvec(msg).expect("frame serialisation")
}

pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FrameError> {
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(body.len()));
    }
    let (msg, rest) =
        postcard::take_from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(msg)
}

/// Decodes a `Hello`, checking magic and version before the rest so that a peer
/// of another version gets a clear error instead of "malformed".
pub fn decode_hello(body: &[u8]) -> Result<Hello, FrameError> {
    let (magic, rest): (u32, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if magic != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let (version, _): (u32, &[u8]) =
        postcard::take_from_bytes(rest).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if version != PROTOCOL_VERSION {
        return Err(FrameError::VersionMismatch { peer: version });
    }
    decode(body)
}

/// Which of a link's two lanes a frame travels on, where the transport has
/// two (QUIC: two streams, the control one sent first). Frames keep their
/// order within a lane, not across lanes; a transport with one byte stream
/// (ssh, the Unix socket) carries both lanes in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Output and everything whose place relative to output matters.
    Output,
    /// Small frames that must not wait behind output already queued.
    Control,
}

/// The lane a frame travels on (see [`Lane`]).
pub trait Laned {
    fn lane(&self) -> Lane;
}

/// Every frame the client sends after its hello is control: nothing bulky
/// flows upwards, and one lane keeps them in order (keys before a detach,
/// acks in increasing order).
pub fn is_control_up(frame: &Up) -> bool {
    match frame {
        Up::Input { .. }
        | Up::Ack { .. }
        | Up::Resize(_)
        | Up::Ping { .. }
        | Up::Detach
        | Up::ExitSeen => true,
    }
}

/// A pong (the link's liveness and round trip) and the tty modes (the client
/// stops predicting echo at a password prompt) are control. Everything else
/// keeps its place in the output: the exit, a detach or an error come after
/// the last output; a state or snapshot stands for output before its offset;
/// an input ack stays too, because the predictive echo judges a prediction a
/// short grace after the ack, expecting the echo right behind it.
pub fn is_control_down(frame: &Down) -> bool {
    match frame {
        Down::Pong { .. } | Down::TtyModes(_) => true,
        Down::Error { .. }
        | Down::Sessions(_)
        | Down::Done
        | Down::Granted(_)
        | Down::Attached(_)
        | Down::Output { .. }
        | Down::Snapshot { .. }
        | Down::InputAck { .. }
        | Down::Exited { .. }
        | Down::Detached
        | Down::SessionList(_)
        | Down::Watching { .. }
        | Down::Attention(_)
        | Down::Away(_)
        | Down::History { .. } => false,
    }
}

impl Laned for Up {
    fn lane(&self) -> Lane {
        if is_control_up(self) {
            Lane::Control
        } else {
            Lane::Output
        }
    }
}

impl Laned for Down {
    fn lane(&self) -> Lane {
        if is_control_down(self) {
            Lane::Control
        } else {
            Lane::Output
        }
    }
}

/// The first frame of a link: the peer reads it on the output lane before
/// anything else.
impl Laned for Hello {
    fn lane(&self) -> Lane {
        Lane::Output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_up_frame() {
        let frames = vec![
            Up::Input {
                seq: 7,
                data: b"ls\r".to_vec(),
            },
            Up::Ack { offset: u64::MAX },
            Up::Resize(WinSize {
                rows: 50,
                cols: 132,
            }),
            Up::Ping { nonce: 3 },
            Up::Detach,
            Up::ExitSeen,
        ];
        for f in frames {
            assert_eq!(decode::<Up>(&encode(&f)).unwrap(), f);
        }
    }

    #[test]
    fn round_trip_hello_and_down() {
        let hello = Hello::new(Request::Attach(AttachRequest {
            target: Target::Existing(Some("work".into())),
            client_id: 42,
            resume: Some(ResumePoint {
                session_id: 9,
                offset: 1 << 40,
            }),
            size: WinSize::default(),
        }));
        assert_eq!(decode_hello(&encode(&hello)).unwrap(), hello);
        let out = Down::Output {
            offset: 5,
            data: vec![0, 1, 2, 255],
        };
        assert_eq!(decode::<Down>(&encode(&out)).unwrap(), out);
    }

    #[test]
    fn round_trip_attention_frames() {
        use crate::attention::{EventKind, State};
        let summary = Summary {
            state: State::Asks("May I?".into()),
            bells: 2,
            notifications: 1,
            last_notification: Some(("May I?".into(), 1_700_000_000)),
            title: Some("agent".into()),
        };
        let downs = vec![
            Down::SessionList(vec![SessionEntry {
                info: SessionInfo {
                    id: 1,
                    name: "a".into(),
                    command: vec!["sh".into()],
                    pid: 9,
                    created: 5,
                    last_output: Some(6),
                    clients: 0,
                    size: WinSize::default(),
                    output_bytes: 10,
                },
                attention: summary.clone(),
                detached_since: Some(7),
                expire_after: None,
            }]),
            Down::Watching {
                cursor: Cursor { epoch: 3, seq: 4 },
            },
            Down::Attention(AttentionEvent {
                seq: 5,
                session_id: 1,
                session: "a".into(),
                at: 8,
                kind: EventKind::Notify {
                    title: "t".into(),
                    body: "b".into(),
                },
            }),
            Down::Away(summary),
        ];
        for d in downs {
            assert_eq!(decode::<Down>(&encode(&d)).unwrap(), d);
        }
        for r in [
            Request::ListAttention,
            Request::Watch(WatchRequest { after: None }),
            Request::Expire {
                name: "a".into(),
                after_secs: Some(60),
            },
            Request::GrantWatch { port_range: (1, 2) },
        ] {
            let h = Hello::new(r);
            assert_eq!(decode_hello(&encode(&h)).unwrap(), h);
        }
        // Appended, so the frames of older peers keep their numbers.
        assert_eq!(encode(&Request::List)[0], 1);
        assert_eq!(encode(&Down::Detached)[0], 10);
    }

    #[test]
    fn pongs_and_modes_overtake_output_but_endings_do_not() {
        assert_eq!(Down::Pong { nonce: 1 }.lane(), Lane::Control);
        assert_eq!(Down::TtyModes(TtyModes::default()).lane(), Lane::Control);
        for d in [
            Down::Output {
                offset: 0,
                data: vec![1],
            },
            Down::Exited { code: 0 },
            Down::Detached,
            Down::InputAck { seq: 1 },
            Down::Snapshot {
                offset: 0,
                data: vec![],
                last: true,
            },
        ] {
            assert_eq!(d.lane(), Lane::Output, "{d:?}");
        }
        assert_eq!(Up::Ping { nonce: 1 }.lane(), Lane::Control);
        assert_eq!(Up::Detach.lane(), Lane::Control);
        assert_eq!(Hello::new(Request::List).lane(), Lane::Output);
    }

    #[test]
    fn error_is_variant_zero_for_old_peers() {
        let e = encode(&Down::Error {
            kind: ErrorKind::Internal,
            message: "x".into(),
        });
        assert_eq!(e[0], 0);
    }

    #[test]
    fn other_version_and_magic_are_named() {
        let mut hello = Hello::new(Request::List);
        hello.version = PROTOCOL_VERSION + 1;
        assert_eq!(
            decode_hello(&encode(&hello)),
            Err(FrameError::VersionMismatch {
                peer: PROTOCOL_VERSION + 1
            })
        );
        hello.magic = 0x1234;
        assert_eq!(decode_hello(&encode(&hello)), Err(FrameError::BadMagic));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for body in [
            &[][..],
            &[0xff; 9][..],
            &[40][..],
            &[3, 1, 0][..],
            &[4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        ] {
            assert!(decode::<Up>(body).is_err());
            assert!(decode::<Down>(body).is_err());
            assert!(decode_hello(body).is_err());
        }
        assert_eq!(
            decode::<Up>(&vec![0; MAX_FRAME_LEN + 1]),
            Err(FrameError::TooLarge(MAX_FRAME_LEN + 1))
        );
    }
}
