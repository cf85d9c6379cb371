//! Unit tests of the simulator: shared helpers here, the tests by subject in the files beside.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use tencent_tc3 as sign;

const ID: &str = "AKIDsimulatortest";
const KEY: &str = "simulator-secret-key";
const HOST: &str = "127.0.0.1:18080";

/// The most of `times` in any one `window`-long half-open window `[t, t + window)`. The same
/// count as the exporter's `tencent::budget::max_in_any_window`, here so that the simulator's tests
/// need no exporter.
fn max_in_any_window(times: &[Instant], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let (mut best, mut start) = (0, 0);
    for end in 0..sorted.len() {
        while sorted[end].duration_since(sorted[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A request description; `build` signs it (unless `authorization` overrides).
#[derive(Clone)]
struct Req {
    id: String,
    key: String,
    body: String,
    timestamp: i64,
    action: Option<&'static str>,
    version: Option<&'static str>,
    host: String,
    content_type: &'static str,
    region: bool,
    token: Option<&'static str>,
    authorization: Option<String>,
    /// Body actually sent, when it differs from the signed one.
    sent_body: Option<String>,
}

impl Req {
    fn new(body: Value) -> Self {
        Req {
            id: ID.to_owned(),
            key: KEY.to_owned(),
            body: body.to_string(),
            timestamp: now_unix(),
            action: Some(ACTION),
            version: Some(VERSION),
            host: HOST.to_owned(),
            content_type: "application/json",
            region: false,
            token: None,
            authorization: None,
            sent_body: None,
        }
    }

    fn build(&self) -> Request<Body> {
        let input = sign::SigningInput {
            host: &self.host,
            content_type: self.content_type,
            service: "live",
            timestamp: self.timestamp,
            body: self.body.as_bytes(),
        };
        let authorization = self
            .authorization
            .clone()
            .unwrap_or_else(|| sign::authorization(&self.id, &self.key, &input));
        let mut b = Request::builder()
            .method("POST")
            .uri("/")
            .header("host", &self.host)
            .header("content-type", self.content_type)
            .header("x-tc-timestamp", self.timestamp.to_string())
            .header("authorization", authorization);
        if let Some(a) = self.action {
            b = b.header("x-tc-action", a);
        }
        if let Some(v) = self.version {
            b = b.header("x-tc-version", v);
        }
        if self.region {
            b = b.header("x-tc-region", "ap-guangzhou");
        }
        if let Some(t) = self.token {
            b = b.header("x-tc-token", t);
        }
        let body = self.sent_body.clone().unwrap_or_else(|| self.body.clone());
        b.body(Body::from(body)).expect("valid request")
    }
}

async fn send(sim: &Simulator, request: Request<Body>) -> Value {
    let response = sim.router().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("JSON answer")
}

async fn call(sim: &Simulator, req: &Req) -> Value {
    send(sim, req.build()).await
}

fn error_code(answer: &Value) -> Option<&str> {
    answer
        .pointer("/Response/Error/Code")
        .and_then(Value::as_str)
}

fn ids(answer: &Value) -> Vec<String> {
    answer["Response"]["LivePackageInfoList"]
        .as_array()
        .expect("a package list")
        .iter()
        .map(|p| p["Id"].as_str().expect("string Id").to_owned())
        .collect()
}

fn sim_with_account() -> Simulator {
    let sim = Simulator::new();
    sim.add_account(ID, KEY);
    sim
}

fn traffic(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "Id": format!("p{i:02}"),
                "Type": 0,
                "Status": 1,
                "Total": 1000,
                "Used": 10,
                "Left": 990,
                // p00 is the oldest.
                "BuyTime": format!("2024-01-{:02} 10:00:00", i + 1),
                "ExpireTime": format!("2025-01-{:02} 10:00:00", 28 - i),
                "WillRenew": 0,
                "RenewalResult": 0
            })
        })
        .collect()
}

mod faults;
mod packages;
mod requests;
