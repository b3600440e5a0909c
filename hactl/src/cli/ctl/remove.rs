//! `remove`: delete every key of the cluster from the DCS, after the cluster name, a typed acknowledgement and (for
//! a healthy cluster) the leader's name.

use ha_core::model::Member;

use super::{CliError, Ctl};

impl Ctl<'_> {
    pub(super) async fn remove(&mut self, cluster_arg: Option<&str>) -> Result<(), CliError> {
        let cluster = self.load().await?;
        self.output_members(&cluster, false, false)?;
        let name = self.prompt("Please confirm the cluster name to remove", "")?;
        if name != self.scope || cluster_arg.map_or(false, |c| c != self.scope) {
            return Err(CliError::Failed(
                "Cluster names specified do not match".into(),
            ));
        }
        let answer = self.prompt(
            &format!(
                "You are about to remove all information in DCS for {}, please type: \"Yes I am aware\"",
                self.scope
            ),
            "",
        )?;
        if answer != "Yes I am aware" {
            return Err(CliError::Failed(
                "You did not exactly type \"Yes I am aware\"".into(),
            ));
        }
        if let Some(l) = cluster.leader_name() {
            let m = cluster.member(l);
            if m.map_or(false, Member::is_running) {
                let given = self.prompt(
                    "This cluster currently is healthy. Please specify the leader name to continue",
                    "",
                )?;
                if given != l {
                    return Err(CliError::Failed(
                        "You did not specify the current leader of the cluster".into(),
                    ));
                }
            }
        }
        self.dcs.delete_cluster().await?;
        Ok(())
    }
}
