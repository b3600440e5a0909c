//! Patroni's `etcd:` section speaks etcd's v2 API, whose keys live apart from the v3 ones hactl reads and writes
//! (hactl serves `etcd:` over v3, with a warning). A cluster Patroni ran there keeps its keys in the v2 store:
//! hactl would see no cluster at all, and a node started beside a Patroni node still running could race to
//! bootstrap or take a lock the other never sees. So a node refuses to start while etcd's v2 store holds its
//! cluster's keys, naming the section and the key it found.

use std::time::Duration;

use tracing::warn;

use crate::config::{Config, DcsConfig, EtcdConfig};
use crate::dcs::DcsBuildError;

/// How long each endpoint may take to answer the v2 read.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Refuses (`DcsBuildError::Invalid` on `etcd`) when an endpoint's v2 store holds `<namespace>/<scope>/`. Only for
/// the `etcd` section; an endpoint without the v2 API (etcd ≥ 3.4's default) answers "not found", and one that does
/// not answer is passed over with a warning (the node then waits for the DCS as always).
pub async fn refuse_a_v2_cluster(config: &Config) -> Result<(), DcsBuildError> {
    let Some(DcsConfig::Etcd(e)) = &config.dcs else {
        return Ok(());
    };
    let http = client(e)?;
    let prefix = config.key_path().prefix().trim_end_matches('/').to_string();
    let mut answered = false;
    for endpoint in e.endpoints() {
        let url = format!("{endpoint}/v2/keys{prefix}");
        let mut req = http.get(&url);
        if let Some(user) = &e.username {
            req = req.basic_auth(user, e.password.as_deref());
        }
        match req.send().await {
            Ok(resp) => {
                answered = true;
                let status = resp.status();
                let body: serde_json::Value = resp.json().await.unwrap_or_default();
                if status.is_success() && body.get("node").is_some() {
                    return Err(DcsBuildError::Invalid {
                        section: "etcd",
                        message: format!(
                            "etcd's v2 store holds this cluster's keys ({url}): a cluster Patroni ran over the v2 \
                             API. hactl speaks etcd's v3 API and would not see them; stop every Patroni node and \
                             move the keys to v3 (or start a new cluster under `etcd3`) first"
                        ),
                    });
                }
            }
            Err(err) => {
                warn!(%endpoint, error = %err, "could not ask etcd's v2 store for a Patroni cluster")
            }
        }
    }
    if !answered {
        warn!(
            "no etcd endpoint answered: whether its v2 store holds a Patroni cluster is not known"
        );
    }
    Ok(())
}

fn client(e: &EtcdConfig) -> Result<reqwest::Client, DcsBuildError> {
    let builder = reqwest::Client::builder().timeout(PROBE_TIMEOUT);
    let builder = if e.protocol == "https" {
        let tls = crate::tls::client::ClientTlsSettings {
            cacert: e.cacert.as_ref().map(Into::into),
            certfile: e.cert.as_ref().map(Into::into),
            keyfile: e.key.as_ref().map(Into::into),
            keyfile_password: e.key_password.clone(),
            insecure: false,
        };
        builder.use_preconfigured_tls(crate::tls::client::client_config(&tls)?)
    } else {
        builder
    };
    builder.build().map_err(|err| DcsBuildError::Invalid {
        section: "etcd",
        message: err.to_string(),
    })
}
