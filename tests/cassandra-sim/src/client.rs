//! Typed client of the control API.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::SimError;
use crate::model::*;

/// Talks to a simulator's control API (`--control-addr`).
#[derive(Debug, Clone)]
pub struct SimClient {
    base: String,
    http: reqwest::Client,
}

impl SimClient {
    /// `base` as `http://127.0.0.1:PORT`.
    pub fn new(base: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        SimClient {
            base: base.into().trim_end_matches('/').to_string(),
            http,
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, SimError> {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await?;
        Self::decode(resp).await
    }

    async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, SimError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await?;
        Self::decode(resp).await
    }

    async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, SimError> {
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(SimError::Status {
                status: status.as_u16(),
                body,
            });
        }
        Ok(resp.json().await?)
    }

    pub async fn state(&self) -> Result<SimState, SimError> {
        self.get("/sim/state").await
    }

    pub async fn history(&self) -> Result<Vec<HistoryEntry>, SimError> {
        self.get("/sim/history").await
    }

    pub async fn violations(&self) -> Result<Vec<Violation>, SimError> {
        self.get("/sim/violations").await
    }

    pub async fn requests(&self) -> Result<Vec<RequestEntry>, SimError> {
        self.get("/sim/requests").await
    }

    pub async fn set_fault(&self, req: &FaultRequest) -> Result<(), SimError> {
        let _: serde_json::Value = self.post("/sim/faults", req).await?;
        Ok(())
    }

    pub async fn create_keyspace(&self, req: &KeyspaceRequest) -> Result<(), SimError> {
        let _: serde_json::Value = self.post("/sim/keyspaces", req).await?;
        Ok(())
    }

    pub async fn config(&self) -> Result<SimConfig, SimError> {
        self.get("/sim/config").await
    }

    pub async fn update_config(&self, update: &ConfigUpdate) -> Result<SimConfig, SimError> {
        self.post("/sim/config", update).await
    }
}
