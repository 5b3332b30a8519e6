//! The relay's SIP application over the stack of `restsip_sip`: the registrar with digest
//! authentication over the REST side's accounts, presence, MESSAGE, calls between phones and
//! web users, proxying, SERVICE, and the upstream server.

pub mod asserted;
pub mod contact;
pub mod core;
pub mod credentials;
pub mod delivery;
pub mod im;
pub mod invite;
pub mod media;
pub mod presence;
pub mod proxy;
pub mod registrar;
pub mod seal;
pub mod sender;
pub mod service;
pub mod upstream;
pub mod watch;
