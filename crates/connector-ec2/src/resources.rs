//! Elastic IPs and volumes, mapped one to one onto EC2's calls.

use super::*;

impl Ec2Connector {
    pub(crate) async fn do_allocate_address(&self, creds: &Credentials) -> Result<AddressInfo, ConnectorError> {
        let req = self.client(creds)?.allocate_address().domain(DomainType::Vpc);
        let out = self.call("AllocateAddress", || req.clone().send()).await?;
        Ok(AddressInfo {
            public_ip: out.public_ip().ok_or_else(|| unreadable("AllocateAddress", "no publicIp"))?.to_string(),
            allocation_id: out.allocation_id().ok_or_else(|| unreadable("AllocateAddress", "no allocationId"))?.to_string(),
            instance_id: None,
            association_id: None,
            private_ip: None,
        })
    }

    pub(crate) async fn do_associate_address(
        &self,
        creds: &Credentials,
        allocation_id: &str,
        instance_id: &str,
        allow_reassociation: bool,
    ) -> Result<String, ConnectorError> {
        let req = self
            .client(creds)?
            .associate_address()
            .allocation_id(allocation_id)
            .instance_id(instance_id)
            .set_allow_reassociation(allow_reassociation.then_some(true));
        let out = self.call("AssociateAddress", || req.clone().send()).await?;
        Ok(out.association_id().ok_or_else(|| unreadable("AssociateAddress", "no associationId"))?.to_string())
    }

    pub(crate) async fn do_disassociate_address(&self, creds: &Credentials, association_id: &str) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.disassociate_address().association_id(association_id);
        self.call("DisassociateAddress", || req.clone().send()).await?;
        Ok(())
    }

    pub(crate) async fn do_release_address(&self, creds: &Credentials, allocation_id: &str) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.release_address().allocation_id(allocation_id);
        self.call("ReleaseAddress", || req.clone().send()).await?;
        Ok(())
    }

    pub(crate) async fn do_describe_addresses(
        &self,
        creds: &Credentials,
        allocation_ids: &[String],
    ) -> Result<Vec<AddressInfo>, ConnectorError> {
        let ids = (!allocation_ids.is_empty()).then(|| allocation_ids.to_vec());
        let req = self.client(creds)?.describe_addresses().set_allocation_ids(ids);
        let out = self.call("DescribeAddresses", || req.clone().send()).await?;
        Ok(out.addresses().iter().filter_map(address_from).collect())
    }

    pub(crate) async fn do_create_volume(&self, creds: &Credentials, req: &CreateVolumeRequest) -> Result<VolumeInfo, ConnectorError> {
        let size = i32::try_from(req.size_gib).map_err(|_| invalid("InvalidParameterValue", "volume size out of range"))?;
        let call = self
            .client(creds)?
            .create_volume()
            .size(size)
            .availability_zone(&req.zone)
            .set_volume_type(req.volume_type.as_deref().map(VolumeType::from))
            .set_snapshot_id(req.snapshot_id.clone());
        let call = crate::launch_options::volume(call, req);
        let out = self.call("CreateVolume", || call.clone().send()).await?;
        Ok(VolumeInfo {
            volume_id: out.volume_id().ok_or_else(|| unreadable("CreateVolume", "no volumeId"))?.to_string(),
            size_gib: out.size().and_then(|s| u32::try_from(s).ok()).unwrap_or(req.size_gib),
            zone: out.availability_zone().unwrap_or(&req.zone).to_string(),
            state: volume_state(out.state()),
            attachments: Vec::new(),
        })
    }

    pub(crate) async fn do_attach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<VolumeAttachment, ConnectorError> {
        let req = self.client(creds)?.attach_volume().volume_id(volume_id).instance_id(instance_id).device(device);
        let out = self.call("AttachVolume", || req.clone().send()).await?;
        attachment_from(out.volume_id().or(Some(volume_id)), out.instance_id().or(Some(instance_id)), out.device(), out.state())
            .ok_or_else(|| unreadable("AttachVolume", "no attachment state"))
    }

    pub(crate) async fn do_detach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: Option<&str>,
        force: bool,
    ) -> Result<VolumeAttachment, ConnectorError> {
        let req = self.client(creds)?.detach_volume().volume_id(volume_id).set_instance_id(instance_id.map(str::to_string)).force(force);
        let out = self.call("DetachVolume", || req.clone().send()).await?;
        attachment_from(out.volume_id().or(Some(volume_id)), out.instance_id().or(instance_id), out.device(), out.state())
            .ok_or_else(|| unreadable("DetachVolume", "no attachment state"))
    }

    pub(crate) async fn do_delete_volume(&self, creds: &Credentials, volume_id: &str) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.delete_volume().volume_id(volume_id);
        self.call("DeleteVolume", || req.clone().send()).await?;
        Ok(())
    }

    pub(crate) async fn do_describe_volumes(&self, creds: &Credentials, volume_ids: &[String]) -> Result<Vec<VolumeInfo>, ConnectorError> {
        let client = self.client(creds)?;
        let mut base = client.describe_volumes();
        if volume_ids.is_empty() {
            // DescribeVolumes takes MaxResults 5-500.
            base = base.max_results(self.options.describe_page_size.clamp(5, 500));
        } else {
            base = base.set_volume_ids(Some(volume_ids.to_vec()));
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let req = base.clone().set_next_token(token.clone());
            let page = self.call("DescribeVolumes", || req.clone().send()).await?;
            out.extend(page.volumes().iter().filter_map(volume_from));
            match next_page("DescribeVolumes", &mut pages, token.as_deref(), page.next_token())? {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }
}

pub(crate) fn address_from(a: &aws_sdk_ec2::types::Address) -> Option<AddressInfo> {
    Some(AddressInfo {
        public_ip: a.public_ip()?.to_string(),
        allocation_id: a.allocation_id()?.to_string(),
        instance_id: a.instance_id().filter(|s| !s.is_empty()).map(str::to_string),
        association_id: a.association_id().map(str::to_string),
        private_ip: a.private_ip_address().map(str::to_string),
    })
}

pub(crate) fn attachment_from(
    volume_id: Option<&str>,
    instance_id: Option<&str>,
    device: Option<&str>,
    state: Option<&aws_sdk_ec2::types::VolumeAttachmentState>,
) -> Option<VolumeAttachment> {
    Some(VolumeAttachment {
        volume_id: volume_id?.to_string(),
        instance_id: instance_id?.to_string(),
        device: device.unwrap_or_default().to_string(),
        state: state?.as_str().to_string(),
    })
}

pub(crate) fn volume_state(s: Option<&aws_sdk_ec2::types::VolumeState>) -> VolumeState {
    s.and_then(|s| VolumeState::parse(s.as_str())).unwrap_or(VolumeState::Error)
}

pub(crate) fn volume_from(v: &aws_sdk_ec2::types::Volume) -> Option<VolumeInfo> {
    Some(VolumeInfo {
        volume_id: v.volume_id()?.to_string(),
        size_gib: v.size().and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
        zone: v.availability_zone().unwrap_or_default().to_string(),
        state: volume_state(v.state()),
        attachments: v
            .attachments()
            .iter()
            .filter_map(|a| attachment_from(a.volume_id(), a.instance_id(), a.device(), a.state()))
            .collect(),
    })
}
