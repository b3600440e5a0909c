//! The REST client hactl talks to members with: the CLI's commands (`restart`, `switchover`, `pause`...) and the
//! daemon's failsafe probe. One place for the client's timeouts and for turning a member's `api_url` (published as
//! `http://host:port/patroni`) into request URLs, so that neither the CLI nor the daemon imports the other.

use std::time::Duration;

use ha_core::model::Member;
use serde_json::Value;

use crate::config::BasicAuth;
use crate::tls::client::ClientTlsSettings;
use crate::tls::TlsError;

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

/// A new HTTP client with patronictl's short timeouts (a dead member must not hang the command), HTTPS with the
/// system's CA certificates.
pub fn http_client() -> reqwest::Client {
    http_client_with(&ClientTlsSettings::default()).unwrap_or_default()
}

/// The same with `ctl`'s TLS settings ([`crate::config::Config::client_tls`]): a CA, a client certificate,
/// `insecure`. An unreadable file is an error naming its key, never a client that silently skips it.
pub fn http_client_with(tls: &ClientTlsSettings) -> Result<reqwest::Client, TlsError> {
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60));
    let builder = if *tls == ClientTlsSettings::default() {
        builder.use_rustls_tls()
    } else {
        builder.use_preconfigured_tls(crate::tls::client::client_config(tls)?)
    };
    builder
        .build()
        .map_err(|e| TlsError::new("ctl", e.to_string()))
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
