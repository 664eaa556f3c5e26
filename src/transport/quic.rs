//! QUIC transport (being built).
pub struct ServerEndpoint;
pub fn verify_proof(_secret: &[u8; 32], _exporter: &[u8; 32], _mac: &[u8; 32]) -> bool {
    false
}
