//! Snapshots and images made from instances over the Query API:
//! CreateSnapshot, DeleteSnapshot, DescribeSnapshots (`Owner.1=self`,
//! paged), CreateImage and DeregisterImage, their parameters built and
//! their answers read here.

use crate::parse::{check_return, parse_time};
use crate::request::{indexed, paged, Params};
use crate::xml::Element;
use crate::{Ec2QueryConnector, MAX_PAGES};
use cloudbroker_connector_api::{ConnectorError, CreateImageRequest, Credentials, SnapshotInfo};
use std::collections::HashSet;

fn unreadable(action: &str, what: &str) -> ConnectorError {
    ConnectorError::Transport { message: format!("unreadable {action} answer from the cloud: {what}") }
}

fn text(e: &Element, name: &str) -> Option<String> {
    e.child_text(name).map(str::to_string)
}

/// A snapshot element (CreateSnapshotResponse itself, or a
/// `snapshotSet/item`).
pub fn snapshot_of(e: &Element, action: &str) -> Result<SnapshotInfo, ConnectorError> {
    Ok(SnapshotInfo {
        snapshot_id: text(e, "snapshotId").ok_or_else(|| unreadable(action, "a snapshot without snapshotId"))?,
        volume_id: text(e, "volumeId").unwrap_or_default(),
        size_gib: text(e, "volumeSize").and_then(|s| s.parse().ok()).unwrap_or(0),
        state: text(e, "status").unwrap_or_else(|| "pending".into()),
        description: text(e, "description").unwrap_or_default(),
        start_time: e.child_text("startTime").and_then(parse_time),
        progress: text(e, "progress").unwrap_or_default(),
    })
}

/// CreateSnapshot's parameters.
pub fn create_snapshot(volume_id: &str, description: &str) -> Params {
    let mut p = vec![("VolumeId".to_string(), volume_id.to_string())];
    if !description.is_empty() {
        p.push(("Description".into(), description.to_string()));
    }
    p
}

/// CreateImage's parameters.
pub fn create_image(req: &CreateImageRequest) -> Params {
    let mut p = vec![("InstanceId".to_string(), req.instance_id.clone()), ("Name".to_string(), req.name.clone())];
    if let Some(d) = req.description.as_deref() {
        p.push(("Description".into(), d.to_string()));
    }
    if req.no_reboot {
        p.push(("NoReboot".into(), "true".into()));
    }
    p
}

impl Ec2QueryConnector {
    pub(crate) async fn do_create_snapshot(
        &self,
        creds: &Credentials,
        volume_id: &str,
        description: &str,
    ) -> Result<SnapshotInfo, ConnectorError> {
        let root = self.call(creds, "CreateSnapshot", create_snapshot(volume_id, description)).await?;
        snapshot_of(&root, "CreateSnapshot")
    }

    pub(crate) async fn do_delete_snapshot(&self, creds: &Credentials, snapshot_id: &str) -> Result<(), ConnectorError> {
        let root = self.call(creds, "DeleteSnapshot", vec![("SnapshotId".into(), snapshot_id.to_string())]).await?;
        check_return(&root, "DeleteSnapshot")
    }

    pub(crate) async fn do_describe_snapshots(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<SnapshotInfo>, ConnectorError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let mut p: Params = vec![("Owner.1".into(), "self".into())];
            indexed(&mut p, "SnapshotId", ids);
            if ids.is_empty() {
                p.extend(paged(Some(self.settings().page_size), token.as_deref()));
            }
            let root = self.call(creds, "DescribeSnapshots", p).await?;
            for item in root.items("snapshotSet") {
                out.push(snapshot_of(item, "DescribeSnapshots")?);
            }
            match text(&root, "nextToken").filter(|t| !t.is_empty() && ids.is_empty()) {
                Some(t) if seen.insert(t.clone()) => token = Some(t),
                Some(_) => {
                    return Err(ConnectorError::Cloud {
                        code: "PaginationLoop".into(),
                        message: "DescribeSnapshots answered the same nextToken twice".into(),
                    })
                }
                None => return Ok(out),
            }
        }
        Err(ConnectorError::Cloud {
            code: "PaginationLoop".into(),
            message: format!("DescribeSnapshots did not end after {MAX_PAGES} pages"),
        })
    }

    pub(crate) async fn do_create_image(&self, creds: &Credentials, req: &CreateImageRequest) -> Result<String, ConnectorError> {
        let root = self.call(creds, "CreateImage", create_image(req)).await?;
        text(&root, "imageId").ok_or_else(|| unreadable("CreateImage", "no imageId"))
    }

    pub(crate) async fn do_deregister_image(&self, creds: &Credentials, image_id: &str) -> Result<(), ConnectorError> {
        let root = self.call(creds, "DeregisterImage", vec![("ImageId".into(), image_id.to_string())]).await?;
        check_return(&root, "DeregisterImage")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn snapshots_parse_and_images_ask() {
        let doc = r#"<DescribeSnapshotsResponse><snapshotSet><item><snapshotId>snap-1</snapshotId><volumeId>vol-1</volumeId>
            <status>completed</status><startTime>2026-12-07T10:00:00.000Z</startTime><progress>100%</progress>
            <volumeSize>8</volumeSize><description>d</description></item></snapshotSet></DescribeSnapshotsResponse>"#;
        let root = crate::xml::parse(doc).unwrap();
        let s: Vec<SnapshotInfo> = root.items("snapshotSet").map(|i| snapshot_of(i, "x").unwrap()).collect();
        assert_eq!((s[0].snapshot_id.as_str(), s[0].size_gib, s[0].state.as_str()), ("snap-1", 8, "completed"));
        assert!(s[0].start_time.is_some());
        let p = create_image(&CreateImageRequest { instance_id: "i-1".into(), name: "n".into(), description: None, no_reboot: true });
        assert_eq!(p, vec![("InstanceId".into(), "i-1".into()), ("Name".into(), "n".into()), ("NoReboot".into(), "true".into())]);
    }
}
