//! WHM API 1's answer envelope:
//! `{"metadata":{"command":F,"version":1,"result":0|1,"reason":TEXT}, "data":{…}}`.
//!
//! Owns: turning a 200 body into the function's `data` (or `None` for
//! metadata-only functions), `result = 0` into [`ErrorKind::Whm`] with the
//! server's reason, and anything that is not such an envelope into
//! [`ErrorKind::Decode`]. A Decode message never quotes the body (it could
//! echo what was sent).
//!
//! Does not own: HTTP statuses (see `whm`) or what a refusal means for a
//! retry (see `retry`).

use serde_json::Value;

use super::ErrorKind;

/// Decodes one answer body. `Ok(None)`: success without `data`.
pub fn decode(body: &[u8]) -> Result<Option<Value>, ErrorKind> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ErrorKind::Decode(format!(
            "the answer is not JSON ({} bytes; {})",
            body.len(),
            e.classify_name()
        ))
    })?;
    let Value::Object(mut top) = value else {
        return Err(ErrorKind::Decode(
            "the answer is JSON but not an object".into(),
        ));
    };
    let metadata = match top.get("metadata") {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ErrorKind::Decode("`metadata` is not an object".into())),
        None => {
            return Err(ErrorKind::Decode(
                "no `metadata` in the answer (not a WHM API 1 envelope; is the URL a WHM server on port 2087?)"
                    .into(),
            ));
        }
    };
    let result = metadata
        .get("result")
        .and_then(as_flag)
        .ok_or_else(|| ErrorKind::Decode("`metadata.result` is missing or not 0/1".into()))?;
    if !result {
        let reason = metadata
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("(no reason given)")
            .to_string();
        return Err(ErrorKind::Whm { reason });
    }
    match top.remove("data") {
        None | Some(Value::Null) => Ok(None),
        Some(data) => Ok(Some(data)),
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "data error",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// WHM writes booleans as 0/1, sometimes as strings: accept 0, 1, "0", "1",
/// true, false.
pub fn as_flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim() {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// A string field, accepting numbers too (WHM is loose about types).
pub fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A non-negative integer field written as a number or a numeric string.
pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The field `key` of `data`, or a Decode error naming it.
pub fn field<'a>(data: Option<&'a Value>, key: &str) -> Result<&'a Value, ErrorKind> {
    data.and_then(|d| d.get(key))
        .ok_or_else(|| ErrorKind::Decode(format!("`data.{key}` is missing")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn success_with_data() {
        let body = br#"{"metadata":{"command":"start_transfer_session","version":1,"result":1,"reason":"OK"},"data":{"pid":4242}}"#;
        let data = decode(body).unwrap().unwrap();
        assert_eq!(data, json!({"pid": 4242}));
    }

    #[test]
    fn success_without_data_is_none() {
        let body = br#"{"metadata":{"command":"pause_transfer_session","version":1,"result":1,"reason":"OK"}}"#;
        assert_eq!(decode(body).unwrap(), None);
        let body = br#"{"metadata":{"result":"1","reason":"OK"},"data":null}"#;
        assert_eq!(decode(body).unwrap(), None);
    }

    #[test]
    fn result_zero_is_whm_error_with_reason() {
        let body = "{\"metadata\":{\"command\":\"enqueue_transfer_item\",\"version\":1,\"result\":0,\
            \"reason\":\"(XID 8f3k2a) An item with a “user” key value of “bob” and a type of “AccountRemoteRoot” already exists in the queue.\"}}";
        match decode(body.as_bytes()) {
            Err(ErrorKind::Whm { reason }) => {
                assert!(reason.contains("already exists in the queue"), "{reason}");
                assert!(reason.starts_with("(XID 8f3k2a)"), "{reason}");
            }
            other => panic!("expected Whm, got {other:?}"),
        }
    }

    #[test]
    fn result_zero_without_reason() {
        let body = br#"{"metadata":{"result":0}}"#;
        assert_eq!(
            decode(body),
            Err(ErrorKind::Whm {
                reason: "(no reason given)".into()
            })
        );
    }

    #[test]
    fn odd_envelopes_are_decode_errors() {
        for body in [
            &b"<html><body>cPanel login</body></html>"[..],
            b"",
            b"[]",
            b"{\"data\":{}}",
            b"{\"metadata\":[]}",
            b"{\"metadata\":{\"reason\":\"OK\"}}",
            b"{\"metadata\":{\"result\":2}}",
            b"{\"metadata\":{\"result\":1,\"reason\":\"OK\"},\"data\":{\"pi",
        ] {
            match decode(body) {
                Err(ErrorKind::Decode(msg)) => {
                    assert!(!msg.contains("cPanel login"), "body leaked: {msg}")
                }
                other => panic!(
                    "{:?}: expected Decode, got {other:?}",
                    String::from_utf8_lossy(body)
                ),
            }
        }
    }

    #[test]
    fn flags_and_numbers() {
        assert_eq!(as_flag(&json!(1)), Some(true));
        assert_eq!(as_flag(&json!("0")), Some(false));
        assert_eq!(as_flag(&json!(false)), Some(false));
        assert_eq!(as_flag(&json!(7)), None);
        assert_eq!(as_u64(&json!("12")), Some(12));
        assert_eq!(as_u64(&json!(12)), Some(12));
        assert_eq!(as_u64(&json!(-1)), None);
        assert_eq!(as_text(&json!(5)), Some("5".into()));
    }
}
