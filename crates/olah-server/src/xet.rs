//! Xet handling. Until the mirror serves the Xet CAS itself, every trace of Xet is removed from
//! what clients see (`X-Xet-Hash` and xet `Link`s are never emitted on resolve; `xetHash` is
//! stripped from JSON), so every client downloads through the mirror over plain HTTP and none
//! escapes to the upstream CAS (PROTOCOL.md §4).

use http::StatusCode;

use crate::error::ApiError;

/// Removes every `xetHash` member from a JSON document (tree, paths-info, repo info siblings).
/// Non-JSON text is returned unchanged.
pub fn strip_json(body: &str) -> String {
    if !body.contains("xetHash") {
        return body.to_string();
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(mut v) => {
            strip_value(&mut v);
            v.to_string()
        }
        Err(_) => body.to_string(),
    }
}

fn strip_value(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("xetHash");
            m.values_mut().for_each(strip_value);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_value),
        _ => {}
    }
}

/// The answer of the token route while the mirror does not serve Xet.
pub fn disabled() -> ApiError {
    ApiError::Hub {
        status: StatusCode::NOT_FOUND,
        code: "XetDisabled",
        message: "this mirror serves Xet-backed files over plain HTTP; Xet is disabled".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_nested_xet_hashes_only() {
        let b = r#"[{"path":"a","xetHash":"ab","lfs":{"oid":"x"}},{"siblings":[{"rfilename":"b","xetHash":"cd"}]}]"#;
        let s = strip_json(b);
        assert!(!s.contains("xetHash"));
        assert!(s.contains("\"oid\":\"x\""));
        assert!(s.contains("rfilename"));
        assert_eq!(strip_json("plain"), "plain");
    }
}
