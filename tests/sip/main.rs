//! End-to-end tests of the relay's SIP side against the real binary: sipp as an independent
//! peer (register, refresh, unregister, wrong password, OPTIONS, over UDP and TCP), the
//! registration seen over REST and its streams, and the RFC 4475 torture messages over real
//! sockets. `sipp` comes from Debian's sip-tester package (scripts/setup.sh installs it).
#![allow(clippy::unwrap_used)]

mod hostile_peers;
mod invite;
mod invite_out;
mod message;
mod phones;
mod presence;
mod proxy;
mod registration;
mod service;
mod sipp;
mod sockets;
mod upstream;
