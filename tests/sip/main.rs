//! End-to-end tests of the relay's SIP side against the real binary: sipp as an independent
//! peer (register, refresh, unregister, wrong password, OPTIONS, over UDP and TCP), the
//! registration seen over REST and its streams, and the RFC 4475 torture messages over real
//! sockets; and an independent softphone, baresip, registering, messaging, calling and
//! watching presence through the relay (`interop`). `sipp` comes from Debian's sip-tester
//! package, `baresip` from baresip-core (scripts/setup.sh installs both).
#![allow(clippy::unwrap_used)]

mod agent;
mod asserted;
mod disclosure;
mod enumeration;
mod failover;
mod floods;
mod guessing;
mod hostile_peers;
mod interop;
mod invite;
mod invite_out;
mod media;
mod message;
mod observe;
mod phones;
mod presence;
mod proxy;
mod registration;
mod relays;
mod service;
mod sipp;
mod sockets;
mod spoofing;
mod tls;
mod tls_dialogs;
mod upstream;
