//! VMs: launch (idempotent per account and client token; `failure.rate`
//! and `capacity` refuse with EC2's capacity error), listing, the state
//! transitions EC2 allows (anything else is `IncorrectInstanceState` and
//! changes nothing), and tags on instances and volumes.

use super::*;

impl SandboxConnector {
    pub(crate) fn owned<'w>(w: &'w mut World, account: &str, id: &str) -> Result<&'w mut SimVm, ConnectorError> {
        match w.vms.get_mut(id) {
            Some(s) if s.account == account => Ok(s),
            _ => Err(ConnectorError::NotFound {
                code: "InvalidInstanceID.NotFound".into(),
                message: format!("The instance ID '{id}' does not exist"),
            }),
        }
    }

    pub(crate) fn transition(
        &self,
        creds: &Credentials,
        ids: &[String],
        f: fn(VmState) -> Result<Option<VmState>, String>,
    ) -> impl std::future::Future<Output = Result<Vec<StateChange>, ConnectorError>> + '_ {
        let ids = ids.to_vec();
        let creds = creds.clone();
        async move {
            self.enter(&creds, move |w, acct| {
                for id in &ids {
                    let s = Self::owned(w, acct, id)?;
                    f(s.vm.state).map_err(|m| ConnectorError::InvalidRequest {
                        code: "IncorrectInstanceState".into(),
                        message: format!("{id}: {m}"),
                    })?;
                }
                let now = now_ms();
                let mut out = Vec::new();
                for id in &ids {
                    let s = Self::owned(w, acct, id)?;
                    let previous = s.vm.state;
                    if let Ok(Some(next)) = f(previous) {
                        s.vm.state = next;
                        s.changed_ms = now;
                        // As EC2's StateTransitionReason: a stop or terminate
                        // carries the time it was asked for (by the sandbox's
                        // clock) until the VM starts again.
                        s.vm.state_since = match next {
                            VmState::Stopping | VmState::Stopped | VmState::ShuttingDown | VmState::Terminated => {
                                chrono::DateTime::from_timestamp_millis(now)
                            }
                            _ => None,
                        };
                    }
                    out.push(StateChange { id: id.clone(), previous, current: s.vm.state });
                }
                Ok(out)
            })
            .await
        }
    }
}

impl SandboxConnector {
    pub(crate) async fn do_run_instances(&self, creds: &Credentials, req: &RunRequest) -> Result<Vec<Vm>, ConnectorError> {
        let fail = self.settings.failure_rate > 0.0 && rand::thread_rng().gen_bool(self.settings.failure_rate.clamp(0.0, 1.0));
        let (public_ips, capacity, keep_tags) = (self.settings.public_ips, self.settings.capacity, self.settings.keep_tags);
        let instance = self.instance.to_string();
        self.enter(creds, move |w, acct| {
            if req.count == 0 {
                return Err(ConnectorError::InvalidRequest {
                    code: "InvalidParameterValue".into(),
                    message: "count must be at least 1".into(),
                });
            }
            if !req.client_token.is_empty() {
                if let Some(ids) = w.tokens.get(&token_key(acct, &req.client_token)) {
                    return Ok(ids.iter().filter_map(|id| w.vms.get(id).map(|s| s.vm.clone())).collect());
                }
            }
            if !w.launchable_image(acct, &req.image_id) {
                return Err(ConnectorError::NotFound {
                    code: "InvalidAMIID.NotFound".into(),
                    message: format!("The image id '[{}]' does not exist", req.image_id),
                });
            }
            if !INSTANCE_TYPES.iter().any(|(t, _, _)| *t == req.instance_type) {
                return Err(ConnectorError::InvalidRequest {
                    code: "InvalidParameterValue".into(),
                    message: format!("Invalid value '{}' for InstanceType.", req.instance_type),
                });
            }
            if let Some(k) = &req.key_name {
                if !w.keys.get(acct).is_some_and(|m| m.contains_key(k)) {
                    return Err(ConnectorError::NotFound {
                        code: "InvalidKeyPair.NotFound".into(),
                        message: format!("The key pair '{k}' does not exist"),
                    });
                }
            }
            launch_options::check_launch(req, &format!("{instance}a"))?;
            if fail {
                return Err(ConnectorError::Capacity {
                    code: "InsufficientInstanceCapacity".into(),
                    message: format!("We currently do not have sufficient {} capacity in sandbox '{instance}'.", req.instance_type),
                });
            }
            if let Some(cap) = capacity {
                let live = w.vms.values().filter(|s| s.vm.state != VmState::Terminated).count();
                if live + req.count as usize > cap {
                    return Err(ConnectorError::Capacity {
                        code: "InsufficientInstanceCapacity".into(),
                        message: format!("sandbox '{instance}' is full ({live} of {cap} VMs live, {} requested)", req.count),
                    });
                }
            }
            let vpc = w.launch_vpc(acct, &format!("{instance}a"), req.subnet_id.as_deref())?;
            let groups = w.launch_groups(acct, &vpc, &req.security_groups, &req.security_group_ids)?;
            let (subnet, ips) = w.place(acct, &format!("{instance}a"), req.subnet_id.as_deref(), req.count)?;
            let mut ips = ips.into_iter();
            let now = now_ms();
            let mut out = Vec::new();
            for _ in 0..req.count {
                w.next += 1;
                let n = w.next;
                let id = format!("i-{:017x}", n ^ 0x5a5a_0000_0000);
                let vm = Vm {
                    id: id.clone(),
                    state: VmState::Pending,
                    image_id: req.image_id.clone(),
                    instance_type: req.instance_type.clone(),
                    private_ip: ips.next(),
                    public_ip: (public_ips && subnet.map_public_ip_on_launch)
                        .then(|| format!("203.0.{}.{}", 113 + ((n >> 8) & 0x7f), n & 0xff)),
                    key_name: req.key_name.clone(),
                    launch_time: Some(Utc::now()),
                    client_token: (!req.client_token.is_empty()).then(|| req.client_token.clone()),
                    tags: if keep_tags { req.tags.clone() } else { Vec::new() },
                    state_since: None,
                    subnet_id: Some(subnet.subnet_id.clone()),
                    vpc_id: Some(subnet.vpc_id.clone()),
                    security_groups: w.launch_group_names(&groups),
                    volumes: crate::launch_details::launch_volumes(n, req),
                    root_device_name: Some(crate::launch_details::ROOT_DEVICE.to_string()),
                };
                if let Some(u) = &req.user_data {
                    w.attrs.entry(id.clone()).or_default().user_data = Some(u.clone());
                }
                w.record_launch(&id, req);
                w.vms.insert(id.clone(), SimVm { vm: vm.clone(), account: acct.to_string(), changed_ms: now, groups: groups.clone() });
                w.order.push(id);
                out.push(vm);
            }
            if !req.client_token.is_empty() {
                w.tokens.insert(token_key(acct, &req.client_token), out.iter().map(|v| v.id.clone()).collect());
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn do_describe_instances(&self, creds: &Credentials, filter: &DescribeFilter) -> Result<Vec<Vm>, ConnectorError> {
        let seen = self
            .enter(creds, |w, acct| {
                for id in &filter.ids {
                    Self::owned(w, acct, id)?;
                }
                Ok(w.order
                    .iter()
                    .filter_map(|id| w.vms.get(id))
                    .filter(|s| s.account == acct && filter.matches(&s.vm))
                    .map(|s| s.vm.clone())
                    .collect())
            })
            .await;
        ListingHold::wait(self.instance.as_str()).await;
        seen
    }

    pub(crate) async fn do_start_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.transition(creds, ids, |s| match s {
            VmState::Stopped => Ok(Some(VmState::Pending)),
            VmState::Pending | VmState::Running => Ok(None),
            other => Err(format!("cannot start an instance that is {other}")),
        })
        .await
    }

    pub(crate) async fn do_stop_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.transition(creds, ids, |s| match s {
            VmState::Running | VmState::Pending => Ok(Some(VmState::Stopping)),
            VmState::Stopping | VmState::Stopped => Ok(None),
            other => Err(format!("cannot stop an instance that is {other}")),
        })
        .await
    }

    pub(crate) async fn do_reboot_instances(&self, creds: &Credentials, ids: &[String]) -> Result<(), ConnectorError> {
        self.transition(creds, ids, |s| match s {
            VmState::Running => Ok(None),
            other => Err(format!("cannot reboot an instance that is {other}")),
        })
        .await
        .map(|_| ())
    }

    pub(crate) async fn do_terminate_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.transition(creds, ids, |s| match s {
            VmState::Terminated | VmState::ShuttingDown => Ok(None),
            _ => Ok(Some(VmState::ShuttingDown)),
        })
        .await
    }

    pub(crate) async fn do_create_tags(
        &self,
        creds: &Credentials,
        ids: &[String],
        tags: &[(String, String)],
    ) -> Result<(), ConnectorError> {
        if !self.settings.keep_tags {
            return Err(ConnectorError::Unsupported { operation: "CreateTags".into() });
        }
        self.enter(creds, |w, acct| {
            let (objects, ids): (Vec<String>, Vec<String>) = ids.iter().cloned().partition(|id| crate::object_tags::is_object_id(id));
            let (volumes, ids) = split_volumes(&ids);
            for id in &volumes {
                w.volume(acct, id)?;
            }
            for id in &objects {
                w.tagged_object(acct, id)?;
            }
            for id in &ids {
                Self::owned(w, acct, id)?;
            }
            for id in &objects {
                w.set_object_tags(id, tags);
            }
            for v in &volumes {
                let tagged = &mut w.volume(acct, v)?.tags;
                for (k, val) in tags {
                    tagged.insert(k.clone(), val.clone());
                }
            }
            for id in &ids {
                let vm = &mut Self::owned(w, acct, id)?.vm;
                for (k, v) in tags {
                    vm.tags.retain(|(key, _)| key != k);
                    vm.tags.push((k.clone(), v.clone()));
                }
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn do_delete_tags(&self, creds: &Credentials, ids: &[String], keys: &[String]) -> Result<(), ConnectorError> {
        if !self.settings.keep_tags {
            return Err(ConnectorError::Unsupported { operation: "DeleteTags".into() });
        }
        self.enter(creds, |w, acct| {
            let (objects, ids): (Vec<String>, Vec<String>) = ids.iter().cloned().partition(|id| crate::object_tags::is_object_id(id));
            let (volumes, ids) = split_volumes(&ids);
            for id in &volumes {
                w.volume(acct, id)?;
            }
            for id in &objects {
                w.tagged_object(acct, id)?;
            }
            for id in &ids {
                Self::owned(w, acct, id)?;
            }
            for id in &objects {
                w.remove_object_tags(id, keys);
            }
            for v in &volumes {
                w.volume(acct, v)?.tags.retain(|k, _| !keys.contains(k));
            }
            for id in &ids {
                Self::owned(w, acct, id)?.vm.tags.retain(|(k, _)| !keys.contains(k));
            }
            Ok(())
        })
        .await
    }
}
