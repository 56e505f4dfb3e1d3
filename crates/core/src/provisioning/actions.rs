//! Reading VMs and acting on them. A user sees only the VMs of the project
//! they act in (whoever of its members launched them; another project's
//! are "not found"); admins see all. Acting (start, stop, reboot,
//! terminate, tags) needs the `member` role there (a viewer is refused,
//! 403). A VM launched with a shared or project credential is acted on only
//! while the project may still use it (else 403, see [`crate::vault`]);
//! admins always may.

use super::{Provisioning, Vm, VmQuery};
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::domain::{Cursor, Page, PageRequest, Tags, VmAction, VmId, VmStatus};
use crate::error::{Resource, ServiceError, ServiceResult};
use cloudbroker_connector_api::model::tags::NAME;
use cloudbroker_connector_api::{ConnectorError, VmState};
use cloudbroker_store::vms::{VmFilter, VmUpdate};
use std::collections::BTreeMap;

impl Provisioning {
    /// One VM (of the actor's project, or any for admins).
    pub async fn get(&self, actor: &Actor, id: &VmId) -> ServiceResult<Vm> {
        self.owned(actor, id).await
    }

    /// One page of VMs, newest first: the actor's project's; admins see all
    /// (or one project's, or one user's).
    pub async fn list(&self, actor: &Actor, query: VmQuery, page: PageRequest) -> ServiceResult<Page<Vm>> {
        self.list_recent(actor, query, page, None).await
    }

    /// Like [`Self::list`], leaving out VMs that ended before `ended_after`
    /// (in the query, so a page costs what it returns, not the history kept).
    pub async fn list_recent(
        &self,
        actor: &Actor,
        query: VmQuery,
        page: PageRequest,
        ended_after: Option<chrono::DateTime<chrono::Utc>>,
    ) -> ServiceResult<Page<Vm>> {
        let (user, project) = if actor.is_admin { (query.user, query.project) } else { (None, Some(actor.project.clone())) };
        let filter = VmFilter {
            user: user.map(|u| u.to_string()),
            project: project.map(|p| p.to_string()),
            instance: query.instance.map(|i| i.to_string()),
            state: query.status.map(|s| s.as_str().to_string()),
            name: query.name,
            launch_id: query.launch.map(|l| l.to_string()),
            client_token: None,
            tag: query.tag,
            ended_after: ended_after.map(|t| t.timestamp_millis()),
        };
        let after_id = page.after.as_ref().map(|c| VmId::from_stored(c.key.clone()));
        let after = page.after.as_ref().zip(after_id.as_ref()).map(|(c, id)| (c.num, id));
        let rows = self.store.page_vms(&filter, after, i64::from(page.limit) + 1).await?;
        let vms = self.vms(rows)?;
        Ok(Page::from_fetched(vms, page.limit, |v| Cursor::new(v.created_at.timestamp_millis(), v.id.as_str())))
    }

    /// The cloud instance `action` would act on: a VM with none yet, or
    /// terminated (but for a repeated terminate), cannot take it.
    pub(super) fn actionable(v: &Vm, action: VmAction) -> ServiceResult<String> {
        let Some(cloud_id) = v.cloud_id.clone() else {
            return Err(ServiceError::Conflict(format!("VM '{}' is {} and has no cloud instance yet", v.id, v.status)));
        };
        if v.status == VmStatus::Terminated && action != VmAction::Terminate {
            return Err(ServiceError::Conflict(format!("VM '{}' is terminated", v.id)));
        }
        Ok(cloud_id)
    }

    /// Starts, stops, reboots or terminates a VM (a member of its project, or admin).
    pub async fn action(&self, actor: &Actor, id: &VmId, action: VmAction) -> ServiceResult<Vm> {
        let v = self.owned(actor, id).await?;
        actor.require_act()?;
        let cloud_id = Self::actionable(&v, action)?;
        if action == VmAction::Terminate {
            self.refuse_protected(&v).await?;
        }
        let (connector, _, _) = self.connector(&v.instance)?;
        let creds = self.vault.credentials_to_act(actor, &v.credential_id, &format!("VM '{id}'")).await?;
        // Starting a stopped VM adds cost: admitted under its budgets first.
        if action == VmAction::Start && v.status == VmStatus::Stopped {
            self.admit_start(&v.id, (&v.user, &v.project), &v.instance, &v.instance_type).await?;
        }
        let ids = [cloud_id];
        let change = match action {
            VmAction::Start => connector.start_instances(&creds, &ids).await?.into_iter().next(),
            VmAction::Stop => connector.stop_instances(&creds, &ids).await?.into_iter().next(),
            VmAction::Terminate => connector.terminate_instances(&creds, &ids).await?.into_iter().next(),
            VmAction::Reboot => {
                connector.reboot_instances(&creds, &ids).await?;
                None
            }
        };
        if let Some(c) = change {
            let (pip, pub_ip) = if c.current == VmState::Terminated || c.current == VmState::ShuttingDown {
                (None, None)
            } else {
                (v.private_ip.clone(), v.public_ip.clone())
            };
            let status = VmStatus::from(c.current);
            let update = VmUpdate { private_ip: pip.as_deref(), public_ip: pub_ip.as_deref(), ..VmUpdate::state(&v.id, status) };
            self.store.update_vm(&update).await?;
        }
        let audited = match action {
            VmAction::Terminate => Some(AuditAction::VmTerminate),
            VmAction::Stop => Some(AuditAction::VmStop),
            VmAction::Start => Some(AuditAction::VmStart),
            VmAction::Reboot => None,
        };
        if let Some(a) = audited {
            // The subject is who launched it (an admin's action on a user's VM names both).
            let event = AuditEvent::ok(a, AuditTarget::Vm(v.id.as_str()))
                .detail(v.instance.as_str())
                .in_project(v.project.as_str())
                .about(v.user.as_str());
            audit::record_by(&self.store, actor, &event).await?;
        }
        self.get(actor, id).await
    }

    /// VM `id` of the project the actor acts in (a member: admins too act
    /// only on the project they entered) and its tags once `set` and
    /// `remove` are applied, checked: what is set like launch tags (what is
    /// kept was checked when it was set), reserved tags never removed, the
    /// count capped.
    pub(super) async fn retagged(
        &self,
        actor: &Actor,
        id: &VmId,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> ServiceResult<(Vm, BTreeMap<String, String>)> {
        let vm = self.owned(actor, id).await?;
        if vm.project != actor.project {
            return Err(ServiceError::NotFound(Resource::Vm(id.clone())));
        }
        actor.require_act()?;
        // `Name` is a tag like any other here (EC2 clients rename with it);
        // the rest is checked as launch tags are.
        Tags::parse(set.iter().filter(|(k, _)| k.as_str() != NAME).map(|(k, v)| (k.clone(), v.clone())).collect())?;
        if set.get(NAME).is_some_and(|n| n.chars().count() > 256 || n.chars().any(char::is_control)) {
            return Err(ServiceError::invalid_field("tags", "the Name tag is at most 256 characters, no control characters"));
        }
        if remove.iter().any(|k| Tags::is_reserved(k) && k != NAME) {
            return Err(ServiceError::invalid_field("tags", "reserved tags (cloudbroker:, aws:) cannot be removed"));
        }
        let mut merged = vm.tags.as_map().clone();
        for k in remove {
            merged.remove(k);
        }
        merged.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        let user_tags = merged.keys().filter(|k| !Tags::is_reserved(k)).count();
        if user_tags > crate::domain::MAX_TAGS || merged.len() > crate::domain::MAX_TAGS + super::request::MAX_CLIENT_TAGS {
            return Err(ServiceError::LimitExceeded { limit: crate::limits::Limit::Tags, max: crate::domain::MAX_TAGS as i64 });
        }
        Ok((vm, merged))
    }

    /// Sets and removes a VM's user tags (a member of its project): validated like launch
    /// tags (reserved prefixes refused), put on the cloud instance too where
    /// the cloud keeps tags, and recorded. Returns the VM.
    pub async fn tag(&self, actor: &Actor, id: &VmId, set: &BTreeMap<String, String>, remove: &[String]) -> ServiceResult<Vm> {
        let (vm, merged) = self.retagged(actor, id, set, remove).await?;
        if let Some(cloud_id) = vm.cloud_id.clone().filter(|_| vm.status.is_live()) {
            let (connector, _, _) = self.connector(&vm.instance)?;
            let creds = self.vault.credentials_to_act(actor, &vm.credential_id, &format!("VM '{id}'")).await?;
            let ids = [cloud_id];
            let pushed = async {
                if !remove.is_empty() {
                    connector.delete_tags(&creds, &ids, remove).await?;
                }
                if !set.is_empty() {
                    let pairs: Vec<(String, String)> = set.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    connector.create_tags(&creds, &ids, &pairs).await?;
                }
                Ok::<(), ConnectorError>(())
            };
            match pushed.await {
                Ok(()) => {}
                Err(ConnectorError::Unsupported { .. }) => {
                    tracing::debug!(instance = %vm.instance, "the cloud keeps no tags: recorded by the broker only");
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.store.set_vm_tags(id, &merged).await?;
        // The broker's name follows the Name tag where its rules for names
        // allow (at most 128 characters); a removed Name tag leaves no name.
        let renamed = match set.get(NAME) {
            Some(n) => Some(n.as_str()).filter(|n| n.chars().count() <= 128),
            None => remove.iter().any(|k| k == NAME).then_some(""),
        };
        if let Some(name) = renamed.filter(|n| *n != vm.name) {
            self.store.set_vm_name(id, name).await?;
        }
        self.owned(actor, id).await
    }
}
