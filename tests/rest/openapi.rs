//! The served OpenAPI document matches the live router: every path answers exactly the
//! documented methods, every operation is routed, and real responses carry the documented fields.

use std::collections::BTreeSet;

use restsip_e2e::Relay;
use serde_json::{json, Value};

fn documented_methods(item: &Value) -> BTreeSet<String> {
    let mut methods: BTreeSet<String> = item
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
        .map(|k| k.to_ascii_uppercase())
        .collect();
    if let Some(extra) = item.get("additionalOperations").and_then(Value::as_object) {
        methods.extend(extra.keys().cloned());
    }
    methods
}

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.starts_with('{') {
                if s == "{id}" || s == "{mid}" || s == "{pid}" {
                    "1"
                } else {
                    "x@example.net"
                }
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_document_matches_the_router() {
    let relay = Relay::default().await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let doc = relay.anonymous().get("/openapi.json").await.unwrap().body;
    assert_eq!(doc["openapi"], "3.2.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "{}", paths.len());
    for (template, item) in paths {
        let path = concrete(template);
        let documented = documented_methods(item);
        // Every path answers exactly the documented methods (ignoring HEAD and OPTIONS).
        let res = a.request("BREW", &path, None).await.unwrap();
        assert_eq!(res.status, 405, "BREW {path}: {}", res.body);
        let allowed: BTreeSet<String> = res
            .header("allow")
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD" && m != "OPTIONS")
            .collect();
        assert_eq!(allowed, documented, "methods of {template}");
        // Every documented operation is routed (it may still refuse the dummy request).
        for method in &documented {
            let res = relay
                .anonymous()
                .request(method, &path, None)
                .await
                .unwrap();
            assert_ne!(res.status, 405, "{method} {path}");
            assert!(
                !(res.status == 404 && res.body["detail"] == "no such resource"),
                "{method} {path} is not routed"
            );
            assert!(res.status < 500, "{method} {path}: {}", res.body);
        }
    }
}

fn required_fields(doc: &Value, schema: &str) -> Vec<String> {
    doc["components"]["schemas"][schema]["required"]
        .as_array()
        .unwrap_or_else(|| panic!("schema {schema} has required fields"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn assert_has(doc: &Value, schema: &str, body: &Value) {
    for field in required_fields(doc, schema) {
        assert!(
            body.get(&field).is_some(),
            "{schema} response lacks {field}: {body}"
        );
    }
    let documented = doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap();
    for key in body.as_object().unwrap().keys() {
        assert!(
            documented.contains_key(key),
            "{schema} response has undocumented field {key}: {body}"
        );
    }
}

#[tokio::test]
async fn responses_carry_the_documented_fields() {
    let relay = Relay::default().await.unwrap();
    let doc = relay.anonymous().get("/openapi.json").await.unwrap().body;
    let a = relay.user("a@example.net").await.unwrap();
    let b = relay.user("b@example.net").await.unwrap();
    assert_has(
        &doc,
        "User",
        &a.get("/user/a@example.net").await.unwrap().body,
    );
    let login = a
        .request(
            "POST",
            "/login/a@example.net",
            Some(json!({"contact": "c", "presence": {"s": 1}})),
        )
        .await
        .unwrap()
        .body;
    assert_has(&doc, "LoginCreated", &login);
    assert_has(
        &doc,
        "Contact",
        &b.get("/login/a@example.net").await.unwrap().body[0],
    );
    let receipt = b
        .request("SEND", "/login/a@example.net", Some(json!({})))
        .await
        .unwrap()
        .body;
    assert_has(&doc, "SendReceipt", &receipt);
    let call = a
        .request("POST", "/call", Some(json!({"subject": "s"})))
        .await
        .unwrap()
        .body;
    assert_has(&doc, "CallCreated", &call);
    let url = call["url"].as_str().unwrap();
    a.request(
        "POST",
        url,
        Some(json!({"url": "/login/a@example.net", "session": "x"})),
    )
    .await
    .unwrap();
    let state = b.get(url).await.unwrap().body;
    assert_has(&doc, "Call", &state);
    assert_has(&doc, "Participant", &state["children"][0]);
    let problem = b.get("/user/nobody@example.net").await.unwrap().body;
    assert_has(&doc, "Problem", &problem);
    let mail = b
        .request(
            "POST",
            "/user/a@example.net/message",
            Some(json!({"url": "rtsp://x"})),
        )
        .await
        .unwrap()
        .body;
    assert_has(&doc, "MailMessage", &mail);
}
