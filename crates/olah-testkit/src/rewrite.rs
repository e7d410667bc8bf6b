//! Hostile mode: rules that rewrite chosen answers of the fake Hub (status, headers, JSON body),
//! so a test can play a hostile repo owner or a hostile or broken upstream.
//!
//! The real handler always runs first (counters and the request log see the request); a rule
//! then rewrites its answer. Rules are matched in order and every matching rule applies. A rule
//! with `times` applies to that many matching requests and then stops matching.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stats::HostKind;

/// Which host a rule applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewriteHost {
    /// The hub host (default).
    #[default]
    Hub,
    /// The CDN host.
    Cdn,
    /// Both hosts.
    Both,
}

/// One rewrite rule. Every field is optional; an empty rule matches every hub request and
/// changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rewrite {
    /// Host the rule applies to.
    pub host: RewriteHost,
    /// Only requests with this method (case-insensitive), e.g. `HEAD`.
    pub method: Option<String>,
    /// A regex searched in the request's path and query (`/api/models/a/b?x=1`).
    pub path: Option<String>,
    /// `true`: only requests without `Authorization`; `false`: only requests with one.
    pub anonymous: Option<bool>,
    /// Apply to the next N matching requests only (default: every matching request).
    pub times: Option<u32>,
    /// Replace the answer's status.
    pub status: Option<u16>,
    /// Headers to set (replacing any value the handler set).
    pub set_headers: BTreeMap<String, String>,
    /// Headers to remove.
    pub remove_headers: Vec<String>,
    /// Deep-merged into a JSON answer body: object into object recursively; when the body is an
    /// array, into every element that is an object. A body that is not JSON is left alone.
    pub json_merge: Option<Value>,
    /// Replaces the body.
    pub body: Option<String>,
    /// Replaces the body with a well-formed JSON array of tree-entry-like objects of about this
    /// many bytes, streamed.
    pub big_json_array_bytes: Option<u64>,
}

/// A rule and its compiled pattern and remaining count.
struct Active {
    rule: Rewrite,
    re: Option<regex::Regex>,
    left: Option<u32>,
}

/// The rules in force.
#[derive(Default)]
pub(crate) struct RewriteTable {
    rules: Mutex<Vec<Active>>,
}

/// What the matching rules decided for one request.
#[derive(Default)]
pub(crate) struct Plan {
    rules: Vec<Rewrite>,
}

impl RewriteTable {
    /// Replaces the rules. A bad regex is an error and changes nothing.
    pub(crate) fn set(&self, rules: Vec<Rewrite>) -> Result<(), String> {
        let mut active = Vec::with_capacity(rules.len());
        for rule in rules {
            let re = match &rule.path {
                Some(p) => Some(regex::Regex::new(p).map_err(|e| format!("bad path regex: {e}"))?),
                None => None,
            };
            active.push(Active {
                left: rule.times,
                re,
                rule,
            });
        }
        *self.rules.lock().expect("rewrite rules") = active;
        Ok(())
    }

    /// The rules with their remaining counts (`times` = what is left).
    pub(crate) fn current(&self) -> Vec<Rewrite> {
        self.rules
            .lock()
            .expect("rewrite rules")
            .iter()
            .map(|a| Rewrite {
                times: a.left,
                ..a.rule.clone()
            })
            .collect()
    }

    /// Picks the rules that apply to a request (and uses up one of each counted rule).
    pub(crate) fn plan<B>(&self, host: HostKind, req: &Request<B>) -> Plan {
        let mut rules = self.rules.lock().expect("rewrite rules");
        if rules.is_empty() {
            return Plan::default();
        }
        let target = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_string(), |p| p.to_string());
        let anonymous = !req.headers().contains_key(header::AUTHORIZATION);
        let mut out = Vec::new();
        for a in rules.iter_mut() {
            let r = &a.rule;
            let host_ok = match r.host {
                RewriteHost::Both => true,
                RewriteHost::Hub => host == HostKind::Hub,
                RewriteHost::Cdn => host == HostKind::Cdn,
            };
            let matches = host_ok
                && r.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(req.method().as_str()))
                && a.re.as_ref().is_none_or(|re| re.is_match(&target))
                && r.anonymous.is_none_or(|want| want == anonymous)
                && a.left != Some(0);
            if matches {
                if let Some(n) = a.left.as_mut() {
                    *n -= 1;
                }
                out.push(r.clone());
            }
        }
        Plan { rules: out }
    }
}

impl Plan {
    /// Whether no rule applies.
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies the rules to an answer, in order.
    pub(crate) async fn apply(self, method: &Method, resp: Response<Body>) -> Response<Body> {
        let mut resp = resp;
        for r in self.rules {
            resp = apply_one(&r, method, resp).await;
        }
        resp
    }
}

async fn apply_one(r: &Rewrite, method: &Method, resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    if let Some(s) = r.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        parts.status = s;
    }
    let mut new_body: Option<Body> = None;
    if let Some(n) = r.big_json_array_bytes {
        new_body = Some(big_json_array(n));
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    } else if let Some(b) = &r.body {
        parts.headers.insert(header::CONTENT_LENGTH, b.len().into());
        new_body = Some(Body::from(b.clone()));
    } else if let Some(patch) = &r.json_merge
        && *method != Method::HEAD
    {
        let bytes = axum::body::to_bytes(body, 64 << 20)
            .await
            .unwrap_or_default();
        let out = match serde_json::from_slice::<Value>(&bytes) {
            Ok(mut v) => {
                merge_into(&mut v, patch);
                Bytes::from(v.to_string())
            }
            Err(_) => bytes,
        };
        parts
            .headers
            .insert(header::CONTENT_LENGTH, out.len().into());
        return finish(r, Response::from_parts(parts, Body::from(out)));
    }
    let body = new_body.unwrap_or(body);
    finish(r, Response::from_parts(parts, body))
}

/// Header edits come last, so a rule may also set `Content-Length` on purpose (a size lie).
fn finish(r: &Rewrite, mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    for name in &r.remove_headers {
        if let Ok(n) = HeaderName::try_from(name.as_str()) {
            h.remove(n);
        }
    }
    for (k, v) in &r.set_headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            h.insert(n, v);
        }
    }
    resp
}

/// Deep merge: objects merge key by key; into an array, merged into each element object;
/// anything else is replaced.
fn merge_into(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(slot @ Value::Object(_)) if v.is_object() => merge_into(slot, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(items), p @ Value::Object(_)) => {
            for it in items.iter_mut().filter(|i| i.is_object()) {
                merge_into(it, p);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// A streamed JSON array of tree-entry-like objects, about `n` bytes long.
fn big_json_array(n: u64) -> Body {
    const PER: u64 = 64 << 10;
    let entry = |i: u64| {
        format!(
            r#"{{"type":"file","oid":"{:040x}","size":{i},"path":"junk/{i:012}.bin"}}"#,
            i
        )
    };
    let chunks = n.div_ceil(PER).max(1);
    let stream = futures::stream::iter((0..chunks).map(move |c| {
        let mut s = String::with_capacity(PER as usize + 256);
        if c == 0 {
            s.push('[');
        }
        let mut i = c * 1_000_000;
        while (s.len() as u64) < PER {
            if !(c == 0 && i == 0) {
                s.push(',');
            }
            s.push_str(&entry(i));
            i += 1;
        }
        if c + 1 == chunks {
            s.push(']');
        }
        Ok::<_, std::io::Error>(Bytes::from(s))
    }));
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_is_deep_and_reaches_array_elements() {
        let mut v = json!({"id": "a/b", "cardData": {"license": "mit"}});
        merge_into(&mut v, &json!({"cardData": {"x": {"xetHash": "h"}}}));
        assert_eq!(
            v,
            json!({"id": "a/b", "cardData": {"license": "mit", "x": {"xetHash": "h"}}})
        );
        let mut a = json!([{"path": "a"}, 3, {"path": "b"}]);
        merge_into(&mut a, &json!({"xetHash": "h"}));
        assert_eq!(
            a,
            json!([{"path": "a", "xetHash": "h"}, 3, {"path": "b", "xetHash": "h"}])
        );
    }

    #[tokio::test]
    async fn big_array_is_valid_json_of_the_asked_size() {
        let b = axum::body::to_bytes(big_json_array(300_000), usize::MAX)
            .await
            .unwrap();
        assert!(b.len() as u64 >= 300_000 && b.len() < 300_000 + (64 << 10) + 512);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert!(v.as_array().unwrap().len() > 1000);
    }

    #[test]
    fn counted_rules_expire_and_filters_apply() {
        let t = RewriteTable::default();
        t.set(vec![Rewrite {
            path: Some("^/api/models/acme/".into()),
            anonymous: Some(true),
            times: Some(1),
            status: Some(401),
            ..Rewrite::default()
        }])
        .unwrap();
        let anon = Request::get("/api/models/acme/x").body(()).unwrap();
        let authed = Request::get("/api/models/acme/x")
            .header("authorization", "Bearer t")
            .body(())
            .unwrap();
        let other = Request::get("/api/models/other/x").body(()).unwrap();
        assert!(t.plan(HostKind::Hub, &authed).is_empty());
        assert!(t.plan(HostKind::Hub, &other).is_empty());
        assert!(t.plan(HostKind::Cdn, &anon).is_empty());
        assert!(!t.plan(HostKind::Hub, &anon).is_empty());
        assert!(t.plan(HostKind::Hub, &anon).is_empty(), "used up");
        assert_eq!(t.current()[0].times, Some(0));
        assert!(
            t.set(vec![Rewrite {
                path: Some("(".into()),
                ..Rewrite::default()
            }])
            .is_err()
        );
    }
}
