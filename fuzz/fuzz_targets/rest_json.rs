//! The JSON request bodies of the REST API and the WebSocket's client frames: any bytes are
//! read or refused, never a panic, and what is read writes back as JSON that reads again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restsip_protocol as p;
use serde::{de::DeserializeOwned, Serialize};

fn round_trip<T: DeserializeOwned + Serialize>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let text = serde_json::to_vec(&value).expect("writes");
        serde_json::from_slice::<T>(&text).expect("reads again");
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<p::CreateUser>(data);
    round_trip::<p::UpdateUser>(data);
    round_trip::<p::CreateLogin>(data);
    round_trip::<p::RefreshLogin>(data);
    round_trip::<p::CreateCall>(data);
    round_trip::<p::JoinCall>(data);
    round_trip::<p::UpdateParticipant>(data);
    round_trip::<p::NewMailMessage>(data);
    round_trip::<p::CancelRequest>(data);
    round_trip::<p::CreateWebhook>(data);
    round_trip::<p::ServiceRequest>(data);
    round_trip::<p::ClientFrame>(data);
});
