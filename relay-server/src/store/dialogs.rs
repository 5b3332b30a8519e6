//! The dialogs table of both stores ([`super::Store::keep_dialog`] and the others): calls a
//! relay of a cluster holds, for another relay to end when it is gone. The statements run
//! alike on both engines (`shared.rs`); what is read back is decoded here.

use serde_json::Value;

/// The records taken, parsed; a record that no longer parses as a JSON object (damaged, or
/// written by something else) is logged with its Call-ID and left out: it names nothing to
/// end.
pub(super) fn decode(rows: Vec<(String, String)>) -> Vec<(String, Value)> {
    rows.into_iter()
        .filter_map(|(call_id, record)| match serde_json::from_str(&record) {
            Ok(record) => Some((call_id, Value::Object(record))),
            Err(e) => {
                tracing::warn!(call_id, error = %e, "a kept call's record does not parse; skipped");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::decode;

    #[test]
    fn a_record_that_is_not_a_json_object_is_left_out_and_the_others_kept() {
        let rows = vec![
            ("a".to_owned(), r#"{"web":"a@x"}"#.to_owned()),
            ("b".to_owned(), r#"{"web":"#.to_owned()),
            ("c".to_owned(), String::new()),
            ("d".to_owned(), "[1]".to_owned()),
            ("e".to_owned(), r#"{"proxied":[]}"#.to_owned()),
        ];
        assert_eq!(
            decode(rows),
            vec![
                ("a".to_owned(), json!({"web": "a@x"})),
                ("e".to_owned(), json!({"proxied": []})),
            ]
        );
    }
}
