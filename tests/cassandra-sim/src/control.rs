//! The control API tests and demos use to look at and steer the simulator.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde_json::json;

use crate::core::Core;
use crate::model::{ConfigUpdate, FaultRequest, KeyspaceRequest};

pub(crate) fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/sim/state", get(state))
        .route("/sim/history", get(history))
        .route("/sim/violations", get(violations))
        .route("/sim/requests", get(requests))
        .route("/sim/faults", post(faults))
        .route("/sim/keyspaces", post(keyspaces))
        .route("/sim/data", post(write_data))
        .route("/sim/config", get(config).post(set_config))
        .route("/healthz", get(|| async { "OK" }))
        .merge(crate::reaper::control_routes())
        .with_state(core)
}

async fn state(State(core): State<Arc<Core>>) -> Response {
    Json(core.state()).into_response()
}

async fn history(State(core): State<Arc<Core>>) -> Response {
    Json(core.history()).into_response()
}

async fn violations(State(core): State<Arc<Core>>) -> Response {
    Json(core.violations()).into_response()
}

async fn requests(State(core): State<Arc<Core>>) -> Response {
    Json(core.requests()).into_response()
}

async fn faults(State(core): State<Arc<Core>>, Json(req): Json<FaultRequest>) -> Response {
    match core.set_fault(&req) {
        Ok(()) => (StatusCode::OK, Json(json!({"ok": true}))).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, Json(json!({"error": e}))).into_response(),
    }
}

async fn keyspaces(State(core): State<Arc<Core>>, Json(req): Json<KeyspaceRequest>) -> Response {
    if req.name.trim().is_empty() || req.cluster.trim().is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "cluster and name are required"})),
        )
            .into_response();
    }
    core.create_user_keyspace(&req);
    (StatusCode::OK, Json(json!({"ok": true}))).into_response()
}

async fn config(State(core): State<Arc<Core>>) -> Response {
    Json(core.config()).into_response()
}

async fn set_config(State(core): State<Arc<Core>>, Json(u): Json<ConfigUpdate>) -> Response {
    Json(core.update_config(&u)).into_response()
}

/// `POST /sim/data` `{cluster, keyspace, table, version}`: every node of the cluster holds it.
async fn write_data(
    State(core): State<Arc<Core>>,
    Json(req): Json<crate::data::DataWrite>,
) -> Response {
    core.write_data(&req);
    StatusCode::NO_CONTENT.into_response()
}
