//! The mirror's own pages: `/` (what the mirror is, how to use it), `/admin` (an HTML page) and
//! `/admin/api/*` (its figures as JSON, and the cache tools run by the server that holds the
//! cache). `/admin*` answers only callers on loopback, or anywhere with
//! `Authorization: Bearer <admin token>` when one is configured; everyone else gets 403.

pub mod cache;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use olah_types::{AdminRoute, Route};

use crate::http::App;

/// Answers [`Route::Landing`] and [`Route::Admin`].
pub async fn answer(app: &App, route: Route, req: Request) -> Response {
    let _ = (app, &req);
    match route {
        Route::Landing => "olah-rs".into_response(),
        Route::Admin(AdminRoute::Cache(op)) => cache::answer(app, op, req).await,
        _ => crate::error::render(olah_types::RouteError::NotFound.into()),
    }
}
