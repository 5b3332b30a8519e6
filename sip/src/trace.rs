//! The SIP message trace: every message in and out, with its peer, transport and size, at
//! the target `restsip_sip::trace` (level TRACE), so an operator turns it on alone
//! (`RUST_LOG=info,restsip_sip::trace=trace`) and debugs a phone without tcpdump.

use std::net::SocketAddr;

/// Whether the trace is on (nothing is formatted otherwise).
pub fn enabled() -> bool {
    tracing::enabled!(tracing::Level::TRACE)
}

/// A message received from `addr` over `transport`.
pub fn received(addr: SocketAddr, transport: &str, data: &[u8]) {
    if enabled() {
        tracing::trace!(
            peer = %addr,
            transport = %transport,
            bytes = data.len(),
            "received\n{}",
            String::from_utf8_lossy(data)
        );
    }
}

/// A message sent to `addr` over `transport`.
pub fn sent(addr: SocketAddr, transport: &str, data: &[u8]) {
    if enabled() {
        tracing::trace!(
            peer = %addr,
            transport = %transport,
            bytes = data.len(),
            "sent\n{}",
            String::from_utf8_lossy(data)
        );
    }
}
