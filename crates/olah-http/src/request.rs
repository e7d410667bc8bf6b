//! What the router knows about a request before dispatching it: the route, parsed once by the
//! `trace` middleware and handed on in an extension ([`Parsed`]), and its class — the `route`
//! label of the HTTP metrics and the route column of the admin page's error ring.

use olah_metrics::RouteClass;
use olah_types::{Route, RouteError};

/// The route the one parser made of the request path: `http::trace` parses it (it needs the route
/// class for the metrics) and hands it to `http::route_request` in the request's extensions.
#[derive(Clone)]
pub(crate) struct Parsed(pub(crate) Result<Route, RouteError>);

/// The `route` label of a request: a small fixed set, never the path itself.
pub(crate) fn route_class(parsed: &Result<Route, RouteError>) -> RouteClass {
    match parsed {
        Ok(Route::Resolve { .. }) => RouteClass::resolve,
        Ok(Route::ResolveCache { .. } | Route::Raw { .. }) => RouteClass::resolve,
        Ok(Route::SafetensorsMetadata { .. } | Route::AuthCheck { .. } | Route::AgentHarnesses) => {
            RouteClass::api
        }
        Ok(Route::XetReadToken { .. }) => RouteClass::xet,
        Ok(Route::CasReconstruction { .. } | Route::CasXorb { .. }) => RouteClass::cas,
        Ok(Route::Landing | Route::Admin(_) | Route::Metrics | Route::Health | Route::Ready) => {
            RouteClass::admin
        }
        Ok(
            Route::Whoami
            | Route::RepoInfo { .. }
            | Route::RevisionInfo { .. }
            | Route::Tree { .. }
            | Route::PathsInfo { .. }
            | Route::Refs { .. }
            | Route::Commits { .. },
        ) => RouteClass::api,
        // Storage Buckets.
        Ok(Route::BucketResolve { .. }) => RouteClass::resolve,
        Ok(Route::BucketXetReadToken { .. }) => RouteClass::xet,
        Ok(
            Route::BucketInfo { .. }
            | Route::BucketList { .. }
            | Route::BucketTree { .. }
            | Route::BucketPathsInfo { .. }
            | Route::BucketEvents { .. }
            | Route::BucketWrite { .. }
            | Route::RepoMove,
        ) => RouteClass::api,
        Err(_) => RouteClass::other,
    }
}
