//! Instances and what launches need: the credentials check, launches
//! (carrying the request's `ClientToken`, so a retried launch never starts
//! VMs twice), state changes, tags, key pairs and security groups.

use super::*;

impl Ec2Connector {
    pub(crate) async fn do_validate_credentials(&self, creds: &Credentials) -> Result<CredentialCheck, ConnectorError> {
        let endpoint = self.endpoint.clone().unwrap_or_else(|| format!("https://ec2.{}.amazonaws.com", self.region));
        let client = self.client(creds).map_err(|e| validation_error(e, &self.region, &endpoint))?;
        let req = client.describe_regions();
        let out = self.call("DescribeRegions", || req.clone().send()).await.map_err(|e| validation_error(e, &self.region, &endpoint))?;
        let listed = out.regions().iter().any(|r| r.region_name() == Some(self.region.as_str()));
        if !listed && self.endpoint.is_none() {
            return Err(ConnectorError::Auth {
                code: "OptInRequired".into(),
                message: format!(
                    "the credentials are valid, but region {} is not enabled for this account (enable it in the AWS console)",
                    self.region
                ),
            });
        }
        Ok(CredentialCheck {
            account: None,
            message: format!("credentials {} are valid for EC2 region {} ({endpoint})", creds.masked_access_key(), self.region),
        })
    }

    pub(crate) async fn do_run_instances(&self, creds: &Credentials, req: &RunRequest) -> Result<Vec<Vm>, ConnectorError> {
        if req.count == 0 {
            return Err(invalid("InvalidParameterValue", "count must be at least 1"));
        }
        if req.image_id.trim().is_empty() {
            return Err(invalid("MissingParameter", "no image id given"));
        }
        let count = i32::try_from(req.count).map_err(|_| invalid("InvalidParameterValue", format!("count {} is too large", req.count)))?;
        let client = self.client(creds)?;
        let mut b = client
            .run_instances()
            .image_id(req.image_id.clone())
            .min_count(count)
            .max_count(count)
            .set_key_name(req.key_name.clone().filter(|k| !k.is_empty()))
            .set_user_data(req.user_data.as_ref().map(|u| base64::engine::general_purpose::STANDARD.encode(u.as_bytes())))
            .set_security_groups(if req.security_groups.is_empty() { None } else { Some(req.security_groups.clone()) })
            .set_security_group_ids(if req.security_group_ids.is_empty() { None } else { Some(req.security_group_ids.clone()) });
        if let Some(subnet) = &req.subnet_id {
            b = b.subnet_id(subnet.clone());
        }
        if !req.instance_type.is_empty() {
            b = b.instance_type(InstanceType::from(req.instance_type.as_str()));
        }
        if !req.tags.is_empty() {
            let tags = req.tags.iter().map(|(k, v)| Tag::builder().key(k.clone()).value(v.clone()).build()).collect();
            b = b.tag_specifications(TagSpecification::builder().resource_type(ResourceType::Instance).set_tags(Some(tags)).build());
        }
        if !req.client_token.is_empty() {
            b = b.client_token(req.client_token.clone());
        }
        let b = crate::launch_options::run(b, req);
        let out = self.call("RunInstances", || b.clone().send()).await?;
        let mut vms: Vec<Vm> = out.instances().iter().filter_map(vm_from).collect();
        for vm in &mut vms {
            // Tags given at launch are not always echoed by RunInstances.
            if vm.tags.is_empty() {
                vm.tags = req.tags.clone();
            }
            if vm.client_token.is_none() && !req.client_token.is_empty() {
                vm.client_token = Some(req.client_token.clone());
            }
            // The groups are the reservation's where an instance does not list its own.
            if vm.security_groups.is_empty() {
                vm.security_groups = out
                    .groups()
                    .iter()
                    .filter_map(|g| Some((g.group_id()?.to_string(), g.group_name().unwrap_or_default().to_string())))
                    .collect();
            }
        }
        tracing::info!(instance = %self.instance, count = vms.len(), image = %req.image_id, "launched EC2 instances");
        Ok(vms)
    }

    pub(crate) async fn do_start_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        check_ids(ids)?;
        let req = self.client(creds)?.start_instances().set_instance_ids(Some(ids.to_vec()));
        let out = self.call("StartInstances", || req.clone().send()).await?;
        Ok(state_changes(out.starting_instances()))
    }

    pub(crate) async fn do_stop_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        check_ids(ids)?;
        let req = self.client(creds)?.stop_instances().set_instance_ids(Some(ids.to_vec()));
        let out = self.call("StopInstances", || req.clone().send()).await?;
        Ok(state_changes(out.stopping_instances()))
    }

    pub(crate) async fn do_reboot_instances(&self, creds: &Credentials, ids: &[String]) -> Result<(), ConnectorError> {
        check_ids(ids)?;
        let req = self.client(creds)?.reboot_instances().set_instance_ids(Some(ids.to_vec()));
        self.call("RebootInstances", || req.clone().send()).await?;
        Ok(())
    }

    pub(crate) async fn do_terminate_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        check_ids(ids)?;
        let req = self.client(creds)?.terminate_instances().set_instance_ids(Some(ids.to_vec()));
        let out = self.call("TerminateInstances", || req.clone().send()).await?;
        Ok(state_changes(out.terminating_instances()))
    }

    pub(crate) async fn do_create_tags(
        &self,
        creds: &Credentials,
        ids: &[String],
        tags: &[(String, String)],
    ) -> Result<(), ConnectorError> {
        check_ids(ids)?;
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let req = self.client(creds)?.create_tags().set_resources(Some(ids.to_vec())).set_tags(Some(tags));
        self.call("CreateTags", || req.clone().send()).await?;
        Ok(())
    }

    pub(crate) async fn do_delete_tags(&self, creds: &Credentials, ids: &[String], keys: &[String]) -> Result<(), ConnectorError> {
        check_ids(ids)?;
        let tags: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(k).build()).collect();
        let req = self.client(creds)?.delete_tags().set_resources(Some(ids.to_vec())).set_tags(Some(tags));
        self.call("DeleteTags", || req.clone().send()).await?;
        Ok(())
    }

    pub(crate) async fn do_import_key_pair(
        &self,
        creds: &Credentials,
        name: &str,
        public_key: &str,
    ) -> Result<KeyPairInfo, ConnectorError> {
        if name.trim().is_empty() {
            return Err(invalid("MissingParameter", "no key pair name given"));
        }
        let req =
            self.client(creds)?.import_key_pair().key_name(name).public_key_material(Blob::new(public_key.trim().as_bytes().to_vec()));
        let out = self.call("ImportKeyPair", || req.clone().send()).await?;
        Ok(KeyPairInfo { name: out.key_name().unwrap_or(name).to_string(), fingerprint: out.key_fingerprint().map(str::to_string) })
    }

    pub(crate) async fn do_delete_key_pair(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.delete_key_pair().key_name(name);
        match self.call("DeleteKeyPair", || req.clone().send()).await {
            Ok(_) | Err(ConnectorError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn do_list_key_pairs(&self, creds: &Credentials) -> Result<Vec<KeyPairInfo>, ConnectorError> {
        let req = self.client(creds)?.describe_key_pairs();
        let out = self.call("DescribeKeyPairs", || req.clone().send()).await?;
        Ok(out
            .key_pairs()
            .iter()
            .filter_map(|k| Some(KeyPairInfo { name: k.key_name()?.to_string(), fingerprint: k.key_fingerprint().map(str::to_string) }))
            .collect())
    }

    pub(crate) async fn do_ensure_security_group(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        if name.trim().is_empty() {
            return Err(invalid("MissingParameter", "no security group name given"));
        }
        let client = self.client(creds)?;
        let req = client.describe_security_groups().filters(Filter::builder().name("group-name").values(name).build());
        let out = self.call("DescribeSecurityGroups", || req.clone().send()).await?;
        if out.security_groups().iter().any(|g| g.group_name() == Some(name)) {
            return Ok(());
        }
        // No spaces: moto re-encodes form bodies with '+' for spaces when it
        // checks signatures, while the SDK sends %20.
        let req = client.create_security_group().group_name(name).description("created-by-cloudbroker");
        match self.call("CreateSecurityGroup", || req.clone().send()).await {
            Ok(_) => {
                tracing::info!(instance = %self.instance, group = name, "created security group");
                Ok(())
            }
            // `default` is reserved because every VPC has it: it exists.
            Err(ConnectorError::InvalidRequest { code, .. }) if code == "InvalidGroup.Duplicate" || code == "InvalidGroup.Reserved" => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

pub(crate) fn state_changes(list: &[InstanceStateChange]) -> Vec<StateChange> {
    list.iter()
        .filter_map(|c| {
            Some(StateChange {
                id: c.instance_id()?.to_string(),
                previous: state_of(c.previous_state()),
                current: state_of(c.current_state()),
            })
        })
        .collect()
}
