//! Bounds on what a peer may ask of the daemon, checked here so that every
//! transport (Unix socket, QUIC, ssh stdio) refuses the same things, before
//! anything proportional to the request is allocated.
//!
//! Why these sizes: the terminal model allocates a cell (~32 bytes) per
//! row × column, twice with the alternate screen. 500 × 1000 is ~16 MB per
//! screen at worst, still more than an 8K display with a small font shows
//! (≈ 270 × 960); 65535 × 65535 would be 128 GB.

use crate::frame::{ErrorKind, Request, Target, WinSize};

/// Rows a terminal may have, inclusive.
pub const MAX_ROWS: u16 = 500;
/// Columns a terminal may have, inclusive.
pub const MAX_COLS: u16 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("terminal size {rows} rows x {cols} columns is out of range (1..={MAX_ROWS} rows, 1..={MAX_COLS} columns)")]
    OutOfRange { rows: u16, cols: u16 },
}

impl SizeError {
    /// The error frame's kind for this refusal.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::BadSize
    }
}

impl WinSize {
    /// The size itself when both dimensions are within bounds. A bad size is
    /// refused, never clamped: a peer that sends one is broken or hostile.
    pub fn validate(self) -> Result<WinSize, SizeError> {
        if (1..=MAX_ROWS).contains(&self.rows) && (1..=MAX_COLS).contains(&self.cols) {
            Ok(self)
        } else {
            Err(SizeError::OutOfRange {
                rows: self.rows,
                cols: self.cols,
            })
        }
    }

    /// A client's own terminal, brought within bounds before it is sent: a
    /// larger terminal shows the session in its top-left 500 × 1000 cells.
    pub fn clamped(self) -> WinSize {
        WinSize {
            rows: self.rows.clamp(1, MAX_ROWS),
            cols: self.cols.clamp(1, MAX_COLS),
        }
    }
}

/// Why a request is refused on a channel restricted to one session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestrictError {
    #[error("this connection may only attach to session '{0}' (abide server --stdio --session)")]
    NotAttach(String),
}

impl RestrictError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Forbidden
    }
}

/// `abide server --stdio --session NAME` (a forced command in
/// `authorized_keys`): the only request allowed is attaching to `NAME`, and
/// whatever session the client named, `NAME` is the one it gets. Creating,
/// listing, killing and granting are refused.
pub fn restrict_to_session(request: Request, name: &str) -> Result<Request, RestrictError> {
    match request {
        Request::Attach(mut a) if !matches!(a.target, Target::Create(_)) => {
            a.target = Target::Existing(Some(name.to_string()));
            Ok(Request::Attach(a))
        }
        _ => Err(RestrictError::NotAttach(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{AttachRequest, NewSession};

    #[test]
    fn sizes_within_bounds_pass_and_others_are_refused_not_clamped() {
        for ok in [(1, 1), (24, 80), (MAX_ROWS, MAX_COLS)] {
            let s = WinSize {
                rows: ok.0,
                cols: ok.1,
            };
            assert_eq!(s.validate(), Ok(s));
        }
        for bad in [
            (0, 80),
            (24, 0),
            (MAX_ROWS + 1, 80),
            (24, MAX_COLS + 1),
            (u16::MAX, u16::MAX),
        ] {
            let s = WinSize {
                rows: bad.0,
                cols: bad.1,
            };
            assert_eq!(
                s.validate(),
                Err(SizeError::OutOfRange {
                    rows: bad.0,
                    cols: bad.1
                })
            );
        }
        assert_eq!(
            WinSize {
                rows: u16::MAX,
                cols: 0
            }
            .clamped(),
            WinSize {
                rows: MAX_ROWS,
                cols: 1
            }
        );
    }

    #[test]
    fn restricted_channel_only_attaches_to_its_session() {
        let attach = |target| {
            Request::Attach(AttachRequest {
                target,
                client_id: 1,
                resume: None,
                size: WinSize::default(),
            })
        };
        for t in [
            Target::Existing(None),
            Target::Existing(Some("other".into())),
            Target::Id(7),
        ] {
            assert_eq!(
                restrict_to_session(attach(t), "work"),
                Ok(attach(Target::Existing(Some("work".into()))))
            );
        }
        let refused = [
            attach(Target::Create(NewSession::default())),
            Request::List,
            Request::KillServer,
            Request::Kill {
                name: "work".into(),
            },
        ];
        for r in refused {
            assert!(matches!(
                restrict_to_session(r, "work"),
                Err(RestrictError::NotAttach(_))
            ));
        }
    }
}
