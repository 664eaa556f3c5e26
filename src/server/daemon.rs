//! The daemon process: runtime directory, lock, socket, the session table,
//! grants for network clients, and when to exit.
//!
//! A session whose program has exited stays in the table, output log and
//! terminal model included, until a client has shown its end (the client
//! says so with `Up::ExitSeen`): a client that was away or cut off when the
//! program ended then gets the output it missed and the exit status. It goes
//! earlier when killed, when its `--expire` time passes, or [`KEEP_EXITED`]
//! after the exit; the daemon runs while it is there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::config::Config;
use crate::paths;
use crate::proto::frame::{ErrorKind, NewSession, SessionInfo, Target, WinSize};
use crate::server::session::{Limits, Session};

pub struct Daemon {
    pub cfg: Config,
    pub rt: PathBuf,
    sessions: Mutex<Sessions>,
    /// Network clients' grants: grant id → (secret, session id).
    pub grants: Mutex<HashMap<[u8; 16], GrantEntry>>,
    /// The QUIC endpoint, started on the first grant.
    pub quic: tokio::sync::Mutex<Option<crate::transport::quic::ServerEndpoint>>,
    shutdown: watch::Sender<bool>,
    channels: AtomicUsize,
    /// Attention events of every session, for watchers.
    pub attention: Arc<crate::server::attention::Hub>,
}

/// A network client's right to attach to one session, minted by a bootstrap.
pub struct GrantEntry {
    /// Zeroed when the grant is dropped (revoked by kill, or expired).
    secret: zeroize::Zeroizing<[u8; 32]>,
    pub session_id: u64,
    minted: Instant,
    /// When the last connection that proved this grant ended; `None` until one has.
    last_used: Option<Instant>,
    /// Connections that proved this grant and are still open.
    in_use: usize,
}

/// A grant nobody has connected with is dropped after this long: the client
/// connects within seconds of its bootstrap, so an unused grant is a leftover
/// (or was minted by someone who should not use it).
pub const GRANT_UNUSED_TTL: Duration = Duration::from_secs(5 * 60);

/// A grant that was used, with no connection open, is dropped after this
/// long. A client that finds its grant gone asks for a new one over ssh
/// (without a prompt), so this bounds how long a leaked secret stays useful
/// rather than how long a laptop may sleep.
pub const GRANT_IDLE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Test knob, not a setting: `ABIDE_TEST_GRANT_IDLE_TTL_MS` replaces
/// [`GRANT_IDLE_TTL`] so that a test sees a grant idle out in seconds.
const GRANT_IDLE_TTL_KNOB: &str = "ABIDE_TEST_GRANT_IDLE_TTL_MS";

fn grant_idle_ttl() -> Duration {
    static TTL: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *TTL.get_or_init(|| {
        std::env::var(GRANT_IDLE_TTL_KNOB)
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(GRANT_IDLE_TTL, Duration::from_millis)
    })
}

/// How long an exited session nobody has seen to its end is kept (unless
/// its `--expire` / `expire_detached` ends it sooner).
pub const KEEP_EXITED: Duration = Duration::from_secs(7 * 24 * 3600);

impl GrantEntry {
    pub fn new(secret: [u8; 32], session_id: u64) -> Self {
        GrantEntry {
            secret: zeroize::Zeroizing::new(secret),
            session_id,
            minted: Instant::now(),
            last_used: None,
            in_use: 0,
        }
    }

    fn expired(&self, now: Instant) -> bool {
        if self.in_use > 0 {
            return false;
        }
        match self.last_used {
            None => now.duration_since(self.minted) > GRANT_UNUSED_TTL,
            Some(t) => now.duration_since(t) > grant_idle_ttl(),
        }
    }
}

/// A connection that proved a grant; dropping it marks the grant unused from then.
pub struct GrantInUse {
    daemon: Arc<Daemon>,
    grant_id: [u8; 16],
    pub session_id: u64,
}

impl Drop for GrantInUse {
    fn drop(&mut self) {
        if let Some(g) = self.daemon.grants.lock().unwrap().get_mut(&self.grant_id) {
            g.in_use = g.in_use.saturating_sub(1);
            g.last_used = Some(Instant::now());
        }
    }
}

#[derive(Default)]
struct Sessions {
    list: Vec<Arc<Session>>,
    last_used: HashMap<u64, u64>,
    tick: u64,
    next_id: u64,
    /// Names of sessions being started (outside the table lock).
    starting: std::collections::HashSet<String>,
}

impl Sessions {
    fn name_taken(&self, name: &str) -> bool {
        self.starting.contains(name) || self.list.iter().any(|x| x.name == name)
    }
}

pub type Refusal = (ErrorKind, String);

/// Session names appear in `host:NAME`, in `ls` columns and in shell commands.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("a session name must have 1 to 64 characters".into());
    }
    if name.starts_with('-')
        || name
            .chars()
            .any(|c| c == ':' || c == '/' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "bad session name '{name}': no ':', '/', spaces, control characters, or leading '-'"
        ));
    }
    Ok(())
}

impl Daemon {
    fn new(cfg: Config, rt: PathBuf) -> Arc<Daemon> {
        Arc::new(Daemon {
            rt,
            sessions: Mutex::new(Sessions {
                next_id: rand_u64() | 1,
                ..Default::default()
            }),
            grants: Mutex::new(HashMap::new()),
            quic: tokio::sync::Mutex::new(None),
            shutdown: watch::channel(false).0,
            channels: AtomicUsize::new(0),
            attention: crate::server::attention::Hub::new(cfg.quiet_after, cfg.expire_detached),
            cfg,
        })
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        self.sessions
            .lock()
            .unwrap()
            .list
            .iter()
            .map(|s| s.info())
            .collect()
    }

    pub fn list_entries(&self) -> Vec<crate::proto::frame::SessionEntry> {
        self.sessions()
            .iter()
            .map(|s| s.attention.entry(s))
            .collect()
    }

    pub fn sessions(&self) -> Vec<Arc<Session>> {
        self.sessions.lock().unwrap().list.clone()
    }

    fn touch(s: &mut Sessions, id: u64) {
        s.tick += 1;
        let t = s.tick;
        s.last_used.insert(id, t);
    }

    pub fn find(&self, target: &Target) -> Result<Arc<Session>, Refusal> {
        let mut s = self.sessions.lock().unwrap();
        let found = match target {
            Target::Existing(Some(name)) => s.list.iter().find(|x| &x.name == name).cloned(),
            Target::Existing(None) => {
                let last = |x: &Arc<Session>| s.last_used.get(&x.id).copied().unwrap_or(0);
                s.list.iter().max_by_key(|x| last(x)).cloned()
            }
            Target::Id(id) => s.list.iter().find(|x| x.id == *id).cloned(),
            Target::Create(_) => None,
        };
        match found {
            Some(sess) => {
                Self::touch(&mut s, sess.id);
                Ok(sess)
            }
            None => Err(match target {
                Target::Existing(Some(name)) => (
                    ErrorKind::NoSuchSession,
                    format!("no session named '{name}'"),
                ),
                Target::Existing(None) => (ErrorKind::NoSuchSession, "no sessions".into()),
                Target::Id(_) => (ErrorKind::NoSuchSession, "the session has ended".into()),
                Target::Create(_) => (ErrorKind::BadRequest, "create is not a lookup".into()),
            }),
        }
    }

    pub fn create(
        self: &Arc<Self>,
        spec: &NewSession,
        size: WinSize,
    ) -> Result<Arc<Session>, Refusal> {
        // Checked before the table lock is taken: the terminal model is sized by it.
        let size = size.validate().map_err(|e| (e.kind(), e.to_string()))?;
        let mut s = self.sessions.lock().unwrap();
        let name = match &spec.name {
            Some(n) => {
                validate_name(n).map_err(|e| (ErrorKind::BadRequest, e))?;
                if s.name_taken(n) {
                    let exited = s
                        .list
                        .iter()
                        .find(|x| &x.name == n)
                        .and_then(|x| x.exit_code());
                    return Err((
                        ErrorKind::NameInUse,
                        match exited {
                            None => format!("a session named '{n}' already exists"),
                            Some(code) => format!(
                                "a session named '{n}' already exists: its program exited ({}) and nobody has seen its last output; `abide attach {n}` shows it, `abide kill {n}` drops it",
                                describe_exit(code)
                            ),
                        },
                    ));
                }
                n.clone()
            }
            // Like tmux: the lowest free number.
            None => (0..)
                .map(|i: u32| i.to_string())
                .find(|n| !s.name_taken(n))
                .unwrap(),
        };
        let id = s.next_id;
        s.next_id = s.next_id.wrapping_add(1);
        // The program is started and its terminal model (sized by the
        // client) allocated without the table lock, which `ls`, every attach
        // and every other session's exit need; the name is held meanwhile.
        s.starting.insert(name.clone());
        drop(s);
        let limits = Limits {
            ring_bytes: self.cfg.ring_bytes,
            scrollback_lines: self.cfg.scrollback_lines,
            attention: self.attention.clone(),
        };
        let weak = Arc::downgrade(self);
        let spawned = Session::spawn(id, name.clone(), spec, size, &limits, move |sess| {
            if let Some(d) = weak.upgrade() {
                d.program_exited(sess);
            }
        });
        let mut s = self.sessions.lock().unwrap();
        s.starting.remove(&name);
        let session = spawned.map_err(|e| (ErrorKind::Internal, format!("{e:#}")))?;
        tracing::info!(name = %session.name, pid = session.pid, "session started");
        // Listed even when the program has already exited: the caller is
        // about to show its output and exit status, and says when it has.
        if !session.was_killed() {
            s.list.push(session.clone());
            Self::touch(&mut s, id);
        }
        Ok(session)
    }

    /// The program ended: a killed session goes, any other one is kept until
    /// a client has shown its end ([`Self::exit_seen`]), as clients that are
    /// attached now may never get it (their link may be down).
    fn program_exited(&self, sess: &Arc<Session>) {
        if sess.was_killed() {
            self.remove(sess.id);
        } else {
            tracing::info!(session = %sess.name, "kept until a client has shown its end");
        }
    }

    /// A client has shown the end of an exited session (its output and the
    /// exit status): nobody needs the session any more.
    pub fn exit_seen(&self, sess: &Session) {
        if sess.exit_code().is_some() {
            tracing::info!(session = %sess.name, "a client has shown its end; dropping it");
            self.remove(sess.id);
        }
    }

    /// The session leaves the table. Its grants stay until they expire (see
    /// `GrantEntry`): a client that was away when it ended then proves its
    /// grant and hears "the session has ended", not "authentication failed".
    fn remove(&self, id: u64) {
        let mut s = self.sessions.lock().unwrap();
        s.list.retain(|x| x.id != id);
        s.last_used.remove(&id);
    }

    /// Drops exited sessions that were killed (or expired) since, and those
    /// kept [`KEEP_EXITED`] without anyone coming for them.
    fn drop_finished(&self, keep: Duration) {
        let mut s = self.sessions.lock().unwrap();
        let gone: Vec<u64> = s
            .list
            .iter()
            .filter(|x| x.exited_for().is_some_and(|t| x.was_killed() || t > keep))
            .map(|x| x.id)
            .collect();
        for id in gone {
            s.list.retain(|x| x.id != id);
            s.last_used.remove(&id);
        }
    }

    pub fn kill(&self, name: &str) -> Result<(), Refusal> {
        let sess = self.find(&Target::Existing(Some(name.to_string())))?;
        // No new network connection to it from now, even if the program
        // takes its time to go.
        self.revoke_grants(sess.id);
        sess.kill();
        if sess.exit_code().is_some() {
            // Already exited (kept for a client that was away): gone now.
            self.remove(sess.id);
        }
        Ok(())
    }

    fn revoke_grants(&self, session_id: u64) {
        self.grants
            .lock()
            .unwrap()
            .retain(|_, g| g.session_id != session_id);
    }

    /// Checks a network client's proof (constant time) against the grant it
    /// names; on success the grant counts as in use until the guard drops.
    pub fn use_grant(
        self: &Arc<Self>,
        grant_id: &[u8; 16],
        exporter: &[u8; 32],
        mac: &[u8; 32],
    ) -> Option<GrantInUse> {
        let mut grants = self.grants.lock().unwrap();
        let g = grants.get_mut(grant_id)?;
        if g.expired(Instant::now())
            || !crate::transport::quic::verify_proof(&g.secret, exporter, mac)
        {
            return None;
        }
        g.in_use += 1;
        Some(GrantInUse {
            daemon: self.clone(),
            grant_id: *grant_id,
            session_id: g.session_id,
        })
    }

    fn expire_grants(&self, now: Instant) {
        self.grants.lock().unwrap().retain(|_, g| !g.expired(now));
    }

    pub fn shut_down(&self) {
        for s in self.sessions.lock().unwrap().list.iter() {
            s.kill();
        }
        self.shutdown.send_replace(true);
    }

    pub fn channel_opened(&self) -> ChannelCount<'_> {
        self.channels.fetch_add(1, Ordering::SeqCst);
        ChannelCount(self)
    }
}

/// Counts live client channels, so that the daemon lets the last clients hear
/// "exited" before it goes away.
pub struct ChannelCount<'a>(&'a Daemon);

impl Drop for ChannelCount<'_> {
    fn drop(&mut self) {
        self.0.channels.fetch_sub(1, Ordering::SeqCst);
    }
}

/// "with status 3", "on signal 9": how the program ended, for messages.
fn describe_exit(code: i32) -> String {
    if code < 0 {
        format!("on signal {}", -code)
    } else {
        format!("with status {code}")
    }
}

pub fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("system randomness");
    u64::from_le_bytes(b)
}

/// Holds the daemon lock for the life of the process (released by the kernel
/// when it exits, however it exits, so a crashed daemon never blocks a new one).
struct Lock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

fn take_lock(rt: &Path) -> Result<Option<Lock>> {
    let f = paths::open_runtime_file(&paths::lock_path(rt), false)
        .context("cannot open the daemon lock file")?;
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(Lock(l))),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e).context("cannot lock the daemon lock file"),
    }
}

/// How long a daemon without sessions waits for its first one.
const STARTUP_GRACE: Duration = Duration::from_secs(30);

/// Runs the daemon in this process until it has no sessions left or is told to stop.
pub fn run_blocking(cfg: Config) -> Result<()> {
    let rt = paths::runtime_dir()?;
    let Some(_lock) = take_lock(&rt)? else {
        tracing::info!("another daemon holds the lock; exiting");
        return Ok(());
    };
    let sock = paths::socket_path(&rt);
    // We hold the lock, so any socket file left is from a dead daemon.
    let _ = std::fs::remove_file(&sock);
    // Two workers, not one: a PTY read that finds the line discipline's
    // 4 KiB buffer empty waits in the kernel for the tty worker to refill it
    // (`flush_work`), so the pump blocks its thread now and then; on a
    // single thread that held up every channel's writes (a `cat` through a
    // session took 30 % longer, `cargo bench --bench throughput`). Heavy model
    // work runs on blocking threads (`Session::off_runtime`, the feeder).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::UnixListener::bind(&sock)
            .with_context(|| format!("cannot listen on {}", sock.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
        paths::write_private(
            &paths::pid_path(&rt),
            format!("{}\n", std::process::id()).as_bytes(),
        )?;
        tracing::info!(pid = std::process::id(), socket = %sock.display(), "daemon listening");
        let daemon = Daemon::new(cfg, rt.clone());
        let result = serve(daemon, listener, &sock).await;
        let _ = std::fs::remove_file(&sock);
        let _ = std::fs::remove_file(paths::pid_path(&rt));
        tracing::info!("daemon exiting");
        result
    })
}

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(20);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// accept errors that say "try again later, not now": EMFILE, ENFILE, ENOBUFS, ENOMEM.
fn out_of_resources(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

async fn serve(
    daemon: Arc<Daemon>,
    listener: tokio::net::UnixListener,
    sock: &std::path::Path,
) -> Result<()> {
    let started = Instant::now();
    let mut shutdown = daemon.shutdown.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut empty_since: Option<Instant> = None;
    let mut had_sessions = false;
    let mut accept_errors = crate::logging::Throttle::new(Duration::from_secs(10));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => { backoff = ACCEPT_BACKOFF_MIN; s }
                    Err(e) => {
                        if let Some(held) = accept_errors.allow(Instant::now()) {
                            tracing::warn!("accept: {e} ({held} more like it not logged)");
                        }
                        // Out of descriptors (or memory): the pending
                        // connection stays in the backlog and accept fails
                        // again at once; wait for some to be closed instead
                        // of spinning.
                        if out_of_resources(&e) {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                        }
                        continue;
                    }
                };
                let d = daemon.clone();
                tokio::spawn(async move {
                    let (r, w) = stream.into_split();
                    let (rx, tx) = crate::transport::framed::split(r, w);
                    if let Err(e) = crate::server::channel::serve(d, rx, tx, crate::server::channel::Peer::Local).await {
                        tracing::debug!("local channel: {e:#}");
                    }
                });
            }
            _ = shutdown.changed() => break,
            _ = tick.tick() => {
                crate::server::attention::tick(&daemon.sessions());
                daemon.drop_finished(KEEP_EXITED);
                daemon.expire_grants(Instant::now());
                let n = daemon.sessions.lock().unwrap().list.len();
                had_sessions |= n > 0;
                if n > 0 {
                    empty_since = None;
                    continue;
                }
                let since = *empty_since.get_or_insert_with(Instant::now);
                let channels = daemon.channels.load(Ordering::SeqCst);
                // Let attached clients hear the exit status (bounded), then go.
                let drained = channels == 0 || since.elapsed() > Duration::from_secs(3);
                if drained && (had_sessions || started.elapsed() > STARTUP_GRACE) {
                    break;
                }
            }
        }
    }
    // Stop taking connections at once: a command that comes now finds no
    // socket and starts the next daemon (once our lock is released) instead
    // of waiting in the backlog of one that is going away.
    let _ = std::fs::remove_file(sock);
    drop(listener);
    // Give channels a moment to deliver their last frames after kill-server.
    let deadline = Instant::now() + Duration::from_secs(2);
    while daemon.channels.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_expire_unused_and_idle_but_not_in_use() {
        let g = GrantEntry::new([1; 32], 9);
        let t0 = g.minted;
        assert!(!g.expired(t0 + GRANT_UNUSED_TTL));
        assert!(g.expired(t0 + GRANT_UNUSED_TTL + Duration::from_secs(1)));
        let mut used = GrantEntry::new([1; 32], 9);
        used.in_use = 1;
        assert!(
            !used.expired(t0 + GRANT_IDLE_TTL * 10),
            "never while in use"
        );
        used.in_use = 0;
        used.last_used = Some(t0 + Duration::from_secs(60));
        assert!(!used.expired(t0 + GRANT_UNUSED_TTL * 2));
        assert!(used.expired(t0 + Duration::from_secs(61) + GRANT_IDLE_TTL));
    }

    #[tokio::test]
    async fn kill_revokes_the_sessions_grants_and_a_proof_is_checked() {
        let d = Daemon::new(Config::default(), std::env::temp_dir());
        let spec = NewSession {
            name: Some("g".into()),
            command: vec!["sleep".into(), "100".into()],
            ..Default::default()
        };
        let s = d
            .create(&spec, WinSize::default())
            .map_err(|e| e.1)
            .unwrap();
        let secret = [5u8; 32];
        let exporter = [6u8; 32];
        d.grants
            .lock()
            .unwrap()
            .insert([1; 16], GrantEntry::new(secret, s.id));
        let mac = crate::transport::quic::make_proof(&secret, &exporter);
        assert!(d.use_grant(&[1; 16], &exporter, &[0; 32]).is_none());
        let using = d
            .use_grant(&[1; 16], &exporter, &mac)
            .expect("a valid proof");
        assert_eq!(using.session_id, s.id);
        drop(using);
        d.kill("g").unwrap();
        assert!(d.grants.lock().unwrap().is_empty(), "kill revokes at once");
        assert!(d.use_grant(&[1; 16], &exporter, &mac).is_none());
    }

    /// A client away when its program ended still proves its grant, and is
    /// told the session ended (it used to be refused as unauthenticated).
    #[tokio::test]
    async fn a_session_that_ended_keeps_its_grant_and_says_so() {
        let d = Daemon::new(Config::default(), std::env::temp_dir());
        let spec = NewSession {
            name: Some("e".into()),
            command: vec!["true".into()],
            ..Default::default()
        };
        let s = d
            .create(&spec, WinSize::default())
            .map_err(|e| e.1)
            .unwrap();
        let secret = [7u8; 32];
        let exporter = [8u8; 32];
        d.grants
            .lock()
            .unwrap()
            .insert([2; 16], GrantEntry::new(secret, s.id));
        let mut exited = s.subscribe_exit();
        tokio::time::timeout(Duration::from_secs(10), exited.wait_for(|c| c.is_some()))
            .await
            .expect("the program ends")
            .unwrap();
        // Kept, exited, until a client has shown its end.
        let kept = d.find(&Target::Id(s.id)).map_err(|e| e.1).unwrap();
        assert_eq!(kept.exit_code(), Some(0));
        assert_eq!(d.list().len(), 1);
        d.exit_seen(&kept);
        assert!(d.list().is_empty(), "gone once a client has seen its end");
        let mac = crate::transport::quic::make_proof(&secret, &exporter);
        let using = d.use_grant(&[2; 16], &exporter, &mac);
        assert_eq!(using.map(|u| u.session_id), Some(s.id));
        let Err((kind, message)) = d.find(&Target::Id(s.id)) else {
            panic!("an ended session is not found");
        };
        assert_eq!(kind, ErrorKind::NoSuchSession);
        assert_eq!(message, "the session has ended");
    }

    async fn exited(d: &Arc<Daemon>, name: &str, command: &str) -> Arc<Session> {
        let spec = NewSession {
            name: Some(name.into()),
            command: vec!["sh".into(), "-c".into(), command.into()],
            ..Default::default()
        };
        let s = d
            .create(&spec, WinSize::default())
            .map_err(|e| e.1)
            .unwrap();
        let mut exit = s.subscribe_exit();
        tokio::time::timeout(Duration::from_secs(10), exit.wait_for(|c| c.is_some()))
            .await
            .expect("the program ends")
            .unwrap();
        s
    }

    /// An exited session stays (nobody has seen its end) until a client
    /// has, a kill, or its time is up; a running one ignores `exit_seen`.
    #[tokio::test]
    async fn an_exited_session_is_kept_until_seen_killed_or_old() {
        let d = Daemon::new(Config::default(), std::env::temp_dir());
        let a = exited(&d, "a", "echo out; exit 3").await;
        let names = |d: &Daemon| d.list().into_iter().map(|i| i.name).collect::<Vec<_>>();
        assert_eq!(names(&d), ["a"]);
        assert_eq!(a.exit_code(), Some(3));
        let Err((kind, message)) = d.create(
            &NewSession {
                name: Some("a".into()),
                command: vec!["true".into()],
                ..Default::default()
            },
            WinSize::default(),
        ) else {
            panic!("the name is still taken");
        };
        assert_eq!(kind, ErrorKind::NameInUse);
        assert!(
            message.contains("exited (with status 3)") && message.contains("abide attach a"),
            "{message}"
        );
        d.drop_finished(KEEP_EXITED);
        assert_eq!(names(&d), ["a"], "kept for days");
        d.drop_finished(Duration::ZERO);
        assert!(names(&d).is_empty(), "dropped once its time is up");

        exited(&d, "b", "exit 0").await;
        d.kill("b").unwrap();
        assert!(names(&d).is_empty(), "kill drops an exited session at once");

        let c = exited(&d, "c", "exit 0").await;
        c.attention.set_expiry(Some(Duration::ZERO));
        std::thread::sleep(Duration::from_millis(5));
        crate::server::attention::tick(&d.sessions());
        d.drop_finished(KEEP_EXITED);
        assert!(names(&d).is_empty(), "its --expire ends it too");

        let spec = NewSession {
            name: Some("r".into()),
            command: vec!["sleep".into(), "100".into()],
            ..Default::default()
        };
        let r = d
            .create(&spec, WinSize::default())
            .map_err(|e| e.1)
            .unwrap();
        d.exit_seen(&r);
        assert_eq!(names(&d), ["r"], "a running session stays");
        let mut exit = r.subscribe_exit();
        d.kill("r").unwrap();
        tokio::time::timeout(Duration::from_secs(10), exit.wait_for(|c| c.is_some()))
            .await
            .expect("killed")
            .unwrap();
        let gone = async {
            while !names(&d).is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), gone)
            .await
            .expect("a killed session is not kept once it exits");
    }
}
