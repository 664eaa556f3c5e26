//! Transports move frames; they make no protocol decisions. Every one of them
//! ends up as a [`framed::Link`]: a frame reader and a frame writer over some
//! byte stream (a Unix socket, a QUIC stream, an ssh process's pipes).

pub mod framed;
pub mod quic;
pub mod quic_probe;
pub mod ssh_stdio;
pub mod unix;
