//! The restsip browser client. Issue 3 turns this into the wasm-bindgen API; for now it holds the
//! pieces that need no browser: building resource paths the way the relay names them.
#![warn(missing_docs)]

use restsip_protocol::Problem;

/// The login collection of a user, `/login/{email}`.
pub fn login_path(email: &str) -> String {
    format!("/login/{email}")
}

/// Reads an error body of the relay into a [`Problem`], if it is one.
pub fn parse_problem(body: &str) -> Option<Problem> {
    serde_json::from_str(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_relay_problem() {
        let body = r#"{"type":"urn:restsip:problem:not-found","title":"Not found","status":404,"detail":"no user x","code":"not-found"}"#;
        let problem = parse_problem(body).expect("a problem body");
        assert_eq!(problem.status, 404);
        assert_eq!(login_path("a@b"), "/login/a@b");
    }
}
