//! Redirect handling against local servers that record what reached them.

use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue, Method};
use olah_metrics::UpstreamKind;

use crate::test_server::TestServer;
use crate::{HubRequest, Response, Upstream, UpstreamError};

/// A Hub whose `/start` redirects to `location` (with `{other}` replaced by the other
/// server's port) and answers 200 elsewhere, and the other server.
async fn hub_redirecting(location: &'static str) -> (TestServer, TestServer) {
    let other = TestServer::start(|_| (200, String::new())).await;
    let other_port = other.port;
    let hub = TestServer::start(move |target| {
        if target == "/start" {
            let loc = location.replace("{other}", &other_port.to_string());
            (307, format!("location: {loc}\r\n"))
        } else {
            (200, String::new())
        }
    })
    .await;
    (hub, other)
}

/// Locations that name another host however they are spelled: `/\host`, `/<TAB>/host`,
/// `//host`, `\\host` and an absolute URL.
const CROSS_HOST: &[&str] = &[
    "/\\127.0.0.1:{other}/stolen",
    "/\t/127.0.0.1:{other}/stolen",
    "//127.0.0.1:{other}/stolen",
    "\\\\127.0.0.1:{other}/stolen",
    "http://127.0.0.1:{other}/stolen",
];

fn token() -> HeaderValue {
    HeaderValue::from_static("Bearer hf_secret")
}

async fn call_hub(up: &Upstream) -> Response {
    let auth = token();
    up.hub(HubRequest {
        method: Method::GET,
        path_and_query: "/start",
        auth: Some(&auth),
        headers: HeaderMap::new(),
        body: None,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn hub_never_follows_a_redirect_to_another_host() {
    for loc in CROSS_HOST {
        let (hub, other) = hub_redirecting(loc).await;
        // Even with the other host on the allow list (a CDN): `hub` follows same-origin
        // redirects only, so the redirect itself is the answer.
        let up = Upstream::new(
            &format!("http://127.0.0.1:{}", hub.port),
            &[format!("127.0.0.1:{}", other.port)],
        )
        .unwrap();
        let resp = call_hub(&up).await;
        assert_eq!(resp.status().as_u16(), 307, "{loc:?}");
        assert!(
            other.seen().is_empty(),
            "{loc:?} reached {:?}",
            other.seen()
        );
        assert_eq!(hub.seen().len(), 1, "{loc:?}");
    }
}

#[tokio::test]
async fn hub_follows_same_origin_redirects_with_the_token() {
    for loc in [
        "/moved/here",
        "/%2F%2F127.0.0.1:{other}/x",
        "http://127.0.0.1:{hub}/m",
    ] {
        let other = TestServer::start(|_| (200, String::new())).await;
        let other_port = other.port;
        let hub_port = Arc::new(Mutex::new(0u16));
        let hp = hub_port.clone();
        let hub = TestServer::start(move |target| {
            if target == "/start" {
                let loc = loc
                    .replace("{other}", &other_port.to_string())
                    .replace("{hub}", &hp.lock().unwrap().to_string());
                (307, format!("location: {loc}\r\n"))
            } else {
                (200, String::new())
            }
        })
        .await;
        *hub_port.lock().unwrap() = hub.port;
        let up = Upstream::new(&format!("http://127.0.0.1:{}", hub.port), &[]).unwrap();
        let resp = call_hub(&up).await;
        assert_eq!(resp.status().as_u16(), 200, "{loc:?}");
        let seen = hub.seen();
        assert_eq!(seen.len(), 2, "{loc:?}: {seen:?}");
        assert_ne!(seen[1].target, "/start");
        assert!(
            seen.iter().all(|s| s.auth),
            "the Hub gets the token: {seen:?}"
        );
        assert!(other.seen().is_empty(), "{loc:?}");
    }
}

#[tokio::test]
async fn get_following_sends_the_token_to_the_hub_only() {
    for loc in CROSS_HOST {
        // Not on the allow list: refused before any request reaches it.
        let (hub, other) = hub_redirecting(loc).await;
        let up = Upstream::new(&format!("http://127.0.0.1:{}", hub.port), &[]).unwrap();
        let auth = token();
        let r = up.get_following("/start", Some(&auth), None).await;
        assert!(
            matches!(r, Err(UpstreamError::DisallowedRedirect(_))),
            "{loc:?}: {r:?}"
        );
        assert!(other.seen().is_empty(), "{loc:?}");
        // On the allow list (a CDN): followed, without the token.
        let up = Upstream::new(
            &format!("http://127.0.0.1:{}", hub.port),
            &[format!("127.0.0.1:{}", other.port)],
        )
        .unwrap();
        let resp = up.get_following("/start", Some(&auth), None).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{loc:?}");
        let seen = other.seen();
        assert_eq!(seen.len(), 1, "{loc:?}");
        assert!(!seen[0].auth, "{loc:?}: the token reached another host");
        assert!(hub.seen().iter().all(|s| s.auth));
    }
}

#[tokio::test]
async fn paths_that_name_another_host_are_refused() {
    let (hub, other) = hub_redirecting("/x").await;
    let up = Upstream::new(
        &format!("http://127.0.0.1:{}", hub.port),
        &[format!("127.0.0.1:{}", other.port)],
    )
    .unwrap();
    let auth = token();
    for p in CROSS_HOST {
        let p = p.replace("{other}", &other.port.to_string());
        let r = up
            .hub(HubRequest {
                method: Method::GET,
                path_and_query: &p,
                auth: Some(&auth),
                headers: HeaderMap::new(),
                body: None,
            })
            .await;
        assert!(r.is_err(), "{p:?}");
        assert!(up.get_following(&p, Some(&auth), None).await.is_err());
    }
    assert!(other.seen().is_empty() && hub.seen().is_empty());
}

#[tokio::test]
async fn get_absolute_contacts_allowed_hosts_only() {
    let (hub, other) = hub_redirecting("/x").await;
    let up = Upstream::new(&format!("http://127.0.0.1:{}", hub.port), &[]).unwrap();
    for u in [
        format!("http://127.0.0.1:{}/cas", other.port),
        format!("http://127.0.0.1:{}@127.0.0.1:{}/", hub.port, other.port),
        format!("http:/\\127.0.0.1:{}/cas", other.port),
    ] {
        assert!(
            up.get_absolute(UpstreamKind::api, &u, Some("t"), None)
                .await
                .is_err(),
            "{u}"
        );
    }
    assert!(other.seen().is_empty());
}
