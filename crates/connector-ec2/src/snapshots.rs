//! Snapshots and images made from instances, mapped one to one onto EC2's
//! calls (CreateSnapshot, DeleteSnapshot, DescribeSnapshots with
//! `OwnerIds=self`, CreateImage, DeregisterImage).

use super::*;
use cloudbroker_connector_api::{CreateImageRequest, SnapshotInfo};

impl Ec2Connector {
    pub(crate) async fn do_create_snapshot(
        &self,
        creds: &Credentials,
        volume_id: &str,
        description: &str,
    ) -> Result<SnapshotInfo, ConnectorError> {
        let req = self
            .client(creds)?
            .create_snapshot()
            .volume_id(volume_id)
            .set_description((!description.is_empty()).then(|| description.to_string()));
        let out = self.call("CreateSnapshot", || req.clone().send()).await?;
        Ok(SnapshotInfo {
            snapshot_id: out.snapshot_id().ok_or_else(|| unreadable("CreateSnapshot", "no snapshotId"))?.to_string(),
            volume_id: out.volume_id().unwrap_or(volume_id).to_string(),
            size_gib: out.volume_size().and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
            state: out.state().map_or("pending", |s| s.as_str()).to_string(),
            description: out.description().unwrap_or(description).to_string(),
            start_time: out.start_time().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
            progress: out.progress().unwrap_or_default().to_string(),
        })
    }

    pub(crate) async fn do_delete_snapshot(&self, creds: &Credentials, snapshot_id: &str) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.delete_snapshot().snapshot_id(snapshot_id);
        self.call("DeleteSnapshot", || req.clone().send()).await?;
        Ok(())
    }

    pub(crate) async fn do_describe_snapshots(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<SnapshotInfo>, ConnectorError> {
        let client = self.client(creds)?;
        let mut base = client.describe_snapshots().owner_ids("self");
        if ids.is_empty() {
            base = base.max_results(self.options.describe_page_size.clamp(5, 1000));
        } else {
            base = base.set_snapshot_ids(Some(ids.to_vec()));
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let req = base.clone().set_next_token(token.clone());
            let page = self.call("DescribeSnapshots", || req.clone().send()).await?;
            out.extend(page.snapshots().iter().filter_map(snapshot_from));
            match next_page("DescribeSnapshots", &mut pages, token.as_deref(), page.next_token())? {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    pub(crate) async fn do_create_image(&self, creds: &Credentials, req: &CreateImageRequest) -> Result<String, ConnectorError> {
        let call = self
            .client(creds)?
            .create_image()
            .instance_id(&req.instance_id)
            .name(&req.name)
            .set_description(req.description.clone())
            .no_reboot(req.no_reboot);
        let out = self.call("CreateImage", || call.clone().send()).await?;
        Ok(out.image_id().ok_or_else(|| unreadable("CreateImage", "no imageId"))?.to_string())
    }

    pub(crate) async fn do_deregister_image(&self, creds: &Credentials, image_id: &str) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.deregister_image().image_id(image_id);
        self.call("DeregisterImage", || req.clone().send()).await?;
        Ok(())
    }
}

/// One snapshot of a DescribeSnapshots answer (none without an id).
fn snapshot_from(s: &aws_sdk_ec2::types::Snapshot) -> Option<SnapshotInfo> {
    Some(SnapshotInfo {
        snapshot_id: s.snapshot_id()?.to_string(),
        volume_id: s.volume_id().unwrap_or_default().to_string(),
        size_gib: s.volume_size().and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
        state: s.state().map_or("pending", |st| st.as_str()).to_string(),
        description: s.description().unwrap_or_default().to_string(),
        start_time: s.start_time().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        progress: s.progress().unwrap_or_default().to_string(),
    })
}
