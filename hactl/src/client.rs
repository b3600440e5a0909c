//! The REST client hactl talks to members with: the CLI's commands (`restart`, `switchover`, `pause`...) and the
//! daemon's failsafe probe. One place for the client's timeouts and for turning a member's `api_url` (published as
//! `http://host:port/patroni`) into request URLs, so that neither the CLI nor the daemon imports the other.

use std::time::Duration;

use ha_core::model::Member;
use serde_json::Value;

use crate::config::BasicAuth;

/// A REST reply: status and body text.
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// The REST API's root from a member's `api_url`: `http://h:p/patroni` → `http://h:p`.
pub fn base_url(api_url: &str) -> String {
    api_url
        .trim_end_matches('/')
        .trim_end_matches("/patroni")
        .to_string()
}

/// A new HTTP client with patronictl's short timeouts: a dead member must not hang the command.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default()
}

/// `method` on `path` of `member`'s REST API, with `auth` as basic auth and `body` as JSON. An error is the one line
/// to show (no `api_url`, or the member did not answer); any HTTP status is a [`Reply`].
pub async fn request(
    http: &reqwest::Client,
    auth: Option<&BasicAuth>,
    member: &Member,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Reply, String> {
    let api = member
        .data
        .api_url
        .as_deref()
        .ok_or_else(|| format!("member {} has no api_url", member.name))?;
    let url = format!("{}/{}", base_url(api), path);
    let mut req = http.request(method, &url);
    if let Some(a) = auth {
        req = req.basic_auth(&a.username, Some(&a.password));
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    Ok(Reply { status, body })
}
