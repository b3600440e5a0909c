//! `dsn`: the libpq connection string of the leader, of a member with a role, or of a named member, as
//! patronictl prints it (`host=10.0.0.1 port=5432`), for scripts that connect through the cluster's view.

use super::{CliError, Ctl};

impl Ctl<'_> {
    pub(super) async fn dsn(
        &mut self,
        cluster_name: Option<&str>,
        role: Option<&str>,
        member: Option<&str>,
    ) -> Result<(), CliError> {
        self.check_cluster(&cluster_name.map(String::from))?;
        let cluster = self.load().await?;
        let found = super::any_member(&cluster, role, member)?;
        let conn = found
            .and_then(|m| m.data.conn_url.as_deref())
            .map(crate::json::host_port_of);
        match conn {
            Some((Some(host), Some(port))) => self.say(format!("host={host} port={port}")),
            _ => Err(CliError::Failed("Can not find a suitable member".into())),
        }
    }
}
