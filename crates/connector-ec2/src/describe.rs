//! Describing: instances (all pages, through the gate page by page; a
//! repeated or endless `nextToken` is an error, never a short list), their
//! states, images and instance types.

use super::*;

impl Ec2Connector {
    pub(crate) async fn describe_all(&self, creds: &Credentials, filter: &DescribeFilter) -> Result<Vec<Vm>, ConnectorError> {
        let client = self.client(creds)?;
        let mut filters = Vec::new();
        for (k, v) in &filter.tags {
            filters.push(Filter::builder().name(format!("tag:{k}")).values(v.clone()).build());
        }
        for k in &filter.tag_keys {
            filters.push(Filter::builder().name("tag-key").values(k.clone()).build());
        }
        let mut base = client.describe_instances().set_filters(if filters.is_empty() { None } else { Some(filters) });
        if filter.ids.is_empty() {
            base = base.max_results(self.options.describe_page_size);
        } else {
            base = base.set_instance_ids(Some(filter.ids.clone()));
        }
        let mut vms = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let req = base.clone().set_next_token(token.clone());
            let out = self.call("DescribeInstances", || req.clone().send()).await?;
            for r in out.reservations() {
                for i in r.instances() {
                    if let Some(vm) = vm_from(i) {
                        vms.push(vm);
                    }
                }
            }
            match next_page("DescribeInstances", &mut pages, token.as_deref(), out.next_token())? {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        // EC2 ANDs filters; apply them again here so that clouds that ignore some stay correct.
        vms.retain(|vm| filter.matches(vm));
        let mut seen = std::collections::HashSet::new();
        vms.retain(|vm| seen.insert(vm.id.clone()));
        Ok(vms)
    }
}

impl Ec2Connector {
    pub(crate) async fn do_describe_instances(&self, creds: &Credentials, filter: &DescribeFilter) -> Result<Vec<Vm>, ConnectorError> {
        self.describe_all(creds, filter).await
    }

    pub(crate) async fn do_instance_states(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<(String, VmState)>, ConnectorError> {
        check_ids(ids)?;
        let base = self.client(creds)?.describe_instance_status().set_instance_ids(Some(ids.to_vec())).include_all_instances(true);
        let mut out = Vec::with_capacity(ids.len());
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let req = base.clone().set_next_token(token.clone());
            let page = self.call("DescribeInstanceStatus", || req.clone().send()).await?;
            for st in page.instance_statuses() {
                if let Some(id) = st.instance_id() {
                    out.push((id.to_string(), state_of(st.instance_state())));
                }
            }
            match next_page("DescribeInstanceStatus", &mut pages, token.as_deref(), page.next_token())? {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(out)
    }

    pub(crate) async fn do_list_images(&self, creds: &Credentials) -> Result<Vec<ImageInfo>, ConnectorError> {
        let client = self.client(creds)?;
        let mut images: BTreeMap<String, ImageInfo> = BTreeMap::new();
        let base = client.describe_images().owners("self").max_results(self.options.images_page_size);
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let req = base.clone().set_next_token(token.clone());
            let out = self.call("DescribeImages", || req.clone().send()).await?;
            for i in out.images() {
                if let Some(info) = image_from(i) {
                    images.insert(info.id.clone(), info);
                }
            }
            match next_page("DescribeImages", &mut pages, token.as_deref(), out.next_token())? {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        if let Some(id) = self.orchestrator_image.as_ref().filter(|id| !images.contains_key(*id)) {
            let req = client.describe_images().image_ids(id.clone());
            match self.call("DescribeImages", || req.clone().send()).await {
                Ok(out) => {
                    for i in out.images() {
                        if let Some(info) = image_from(i) {
                            images.insert(info.id.clone(), info);
                        }
                    }
                }
                Err(e @ (ConnectorError::NotFound { .. } | ConnectorError::InvalidRequest { .. })) => {
                    tracing::warn!(instance = %self.instance, image = %id, error = %e, "orchestrator.imageid is not visible to these credentials");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(images.into_values().collect())
    }

    pub(crate) async fn do_list_instance_types(&self, creds: &Credentials) -> Result<Vec<InstanceTypeInfo>, ConnectorError> {
        let client = self.client(creds)?;
        let base = client.describe_instance_types().max_results(self.options.instance_types_page_size);
        let mut types: BTreeMap<String, InstanceTypeInfo> = BTreeMap::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let req = base.clone().set_next_token(token.clone());
            let out = self.call("DescribeInstanceTypes", || req.clone().send()).await?;
            for t in out.instance_types() {
                if let Some(name) = t.instance_type() {
                    types.insert(
                        name.as_str().to_string(),
                        InstanceTypeInfo {
                            name: name.as_str().to_string(),
                            vcpus: t.v_cpu_info().and_then(|v| v.default_v_cpus()).and_then(|n| u32::try_from(n).ok()),
                            memory_mib: t.memory_info().and_then(|m| m.size_in_mib()).and_then(|n| u64::try_from(n).ok()),
                        },
                    );
                }
            }
            match next_page("DescribeInstanceTypes", &mut pages, token.as_deref(), out.next_token())? {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(types.into_values().collect())
    }

    pub(crate) async fn do_describe_image(&self, creds: &Credentials, id: &str) -> Result<Option<ImageInfo>, ConnectorError> {
        let client = self.client(creds)?;
        let req = client.describe_images().image_ids(id);
        match self.call("DescribeImages", || req.clone().send()).await {
            Ok(out) => Ok(out.images().iter().filter_map(image_from).find(|i| i.id == id)),
            // An unknown or malformed id: the cloud has no such image.
            Err(ConnectorError::NotFound { .. }) => Ok(None),
            Err(ConnectorError::InvalidRequest { code, .. }) if code.starts_with("InvalidAMIID") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Safety stop for a cloud that never stops answering a `nextToken`.
pub(crate) const MAX_PAGES: u32 = 10_000;

/// The token of the next page, or `None` at the end. A cloud that answers the
/// token it was just given would loop forever, and stopping quietly would
/// return a partial list that callers take for the whole: that is an error.
pub(crate) fn next_page(
    action: &str,
    pages: &mut u32,
    previous: Option<&str>,
    next: Option<&str>,
) -> Result<Option<String>, ConnectorError> {
    *pages += 1;
    match next.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(_) if *pages >= MAX_PAGES => Err(ConnectorError::Cloud {
            code: "PaginationLoop".into(),
            message: format!("{action} did not end after {MAX_PAGES} pages; the listing is incomplete"),
        }),
        Some(t) if previous == Some(t) => Err(ConnectorError::Cloud {
            code: "PaginationLoop".into(),
            message: format!("{action} answered the same nextToken twice; the listing is incomplete"),
        }),
        Some(t) => Ok(Some(t.to_string())),
    }
}

pub(crate) fn vm_from(i: &Instance) -> Option<Vm> {
    let id = i.instance_id()?.to_string();
    let state = i.state().and_then(|s| s.name()).and_then(|n| VmState::parse(n.as_str())).unwrap_or(VmState::Pending);
    Some(Vm {
        id,
        state,
        image_id: i.image_id().unwrap_or_default().to_string(),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        private_ip: i.private_ip_address().filter(|s| !s.is_empty()).map(str::to_string),
        public_ip: i.public_ip_address().filter(|s| !s.is_empty()).map(str::to_string),
        key_name: i.key_name().filter(|s| !s.is_empty()).map(str::to_string),
        launch_time: i.launch_time().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        client_token: i.client_token().filter(|s| !s.is_empty()).map(str::to_string),
        tags: i.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect(),
        state_since: i.state_transition_reason().and_then(cloudbroker_connector_api::model::transition_time),
        subnet_id: i.subnet_id().filter(|s| !s.is_empty()).map(str::to_string),
        vpc_id: i.vpc_id().filter(|s| !s.is_empty()).map(str::to_string),
        security_groups: i
            .security_groups()
            .iter()
            .filter_map(|g| Some((g.group_id()?.to_string(), g.group_name().unwrap_or_default().to_string())))
            .collect(),
        volumes: i
            .block_device_mappings()
            .iter()
            .filter_map(|d| {
                let ebs = d.ebs()?;
                Some(cloudbroker_connector_api::VmVolume {
                    device_name: d.device_name()?.to_string(),
                    volume_id: ebs.volume_id().filter(|v| !v.is_empty())?.to_string(),
                    delete_on_termination: ebs.delete_on_termination().unwrap_or(false),
                })
            })
            .collect(),
        root_device_name: i.root_device_name().filter(|s| !s.is_empty()).map(str::to_string),
    })
}

pub(crate) fn state_of(s: Option<&aws_sdk_ec2::types::InstanceState>) -> VmState {
    s.and_then(|s| s.name()).and_then(|n| VmState::parse(n.as_str())).unwrap_or(VmState::Pending)
}

pub(crate) fn image_from(i: &aws_sdk_ec2::types::Image) -> Option<ImageInfo> {
    Some(ImageInfo {
        id: i.image_id()?.to_string(),
        name: i.name().map(str::to_string),
        description: i.description().map(str::to_string),
        state: i.state().map(|s| s.as_str().to_string()),
    })
}
