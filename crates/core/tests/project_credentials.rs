//! Project-scope credentials and grants of shared credentials to projects,
//! through the services (no HTTP), on SQLite and on PostgreSQL: a launch
//! picks the actor's own credential, else its project's, else a shared one
//! granted to its project (else the sandbox's anonymous account), and the VM
//! records which; a project's owners store its credential, its members use it
//! and see it masked only, viewers and outsiders cannot store one; a grant to
//! a project serves every member and its revocation turns their actions on
//! what was made with it into 403s. EC2 access keys act in their project
//! with their holder's current role there (none once removed).

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_connector_api::SecretString;
use cloudbroker_core::domain::{CredentialId, CredentialName, ProjectName, ProjectRole, VmAction};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{LaunchRequest, Vm};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::vault::Scope;
use cloudbroker_core::{Actor, Broker, Resource, ServiceError};
use std::collections::BTreeMap;

fn admin() -> Actor {
    Actor::system()
}

async fn add_user(b: &Broker, name: &str) -> Actor {
    let u = b.identity.create_user(&admin(), &user(name), &SecretString::new(format!("{name}-password")), false).await.unwrap();
    Actor::new(u.name, false)
}

fn project(name: &str) -> ProjectName {
    ProjectName::parse(name).unwrap()
}

async fn linux_image(b: &Broker) {
    let mut mappings = BTreeMap::new();
    for i in ["sb", "sb2"] {
        mappings.insert(
            instance(i),
            ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: Some("t2.small".into()), security_group: None },
        );
    }
    let spec = ImageSpec { name: image("linux"), description: "any Linux".into(), os: "linux".into(), parent: None, mappings };
    b.images.put(&admin(), spec, true).await.unwrap();
}

/// Team `team-a`: `olga` owns it, `mark` is a member, `vera` a viewer;
/// `otto` is in no team. Returns them entered in team-a (otto: personal).
struct Team {
    olga: Actor,
    mark: Actor,
    vera: Actor,
    otto: Actor,
}

async fn team(b: &Broker) -> Team {
    let olga = add_user(b, "olga").await;
    let mark = add_user(b, "mark").await;
    let vera = add_user(b, "vera").await;
    let otto = add_user(b, "otto").await;
    let a = project("team-a");
    b.projects.create(&olga, &a, "team A", None).await.unwrap();
    b.projects.set_member(&olga, &a, &mark.name, ProjectRole::Member).await.unwrap();
    b.projects.set_member(&olga, &a, &vera.name, ProjectRole::Viewer).await.unwrap();
    Team {
        olga: b.projects.enter(olga, &a).await.unwrap(),
        mark: b.projects.enter(mark, &a).await.unwrap(),
        vera: b.projects.enter(vera, &a).await.unwrap(),
        otto,
    }
}

async fn launch(b: &Broker, actor: &Actor, on: &str) -> Vm {
    b.provisioning.launch(actor, LaunchRequest::new(instance(on), image_ref("linux"))).await.unwrap().vms.remove(0)
}

/// The secret and the stored credential `actor` launches with on `on`.
async fn pick(b: &Broker, actor: &Actor, on: &str) -> (String, CredentialId) {
    let (c, id) = b.vault.credentials_for_launch(actor, &instance(on)).await.unwrap();
    (c.secret_access_key.expose().to_string(), id)
}

broker_test!(a_launch_picks_user_then_project_then_system_grant, |b: Broker| async move {
    linux_image(&b).await;
    let t = team(&b).await;
    let sb = instance("sb");
    let a = project("team-a");
    // Nothing stored: the sandbox's anonymous per-user account.
    let (_, anonymous) = pick(&b, &t.mark, "sb").await;
    assert_eq!(anonymous.as_str(), "anonymous:mark");
    // A shared credential granted to the team (and to nobody else).
    let shared = CredentialName::parse("shared").unwrap();
    b.vault.put(&admin(), Scope::System(&shared), &sb, "AKIASHARED0001", "shared-secret", false).await.unwrap();
    let g = b.vault.grant(&admin(), &shared, &sb, std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(g.granted_to, Some(vec!["team-a".to_string()]));
    let (secret, system_id) = pick(&b, &t.mark, "sb").await;
    assert_eq!(secret, "shared-secret");
    let vm = launch(&b, &t.mark, "sb").await;
    assert_eq!((vm.project.as_str(), vm.user.as_str()), ("team-a", "mark"));
    assert_eq!(vm.credential_id, system_id, "the VM records the shared credential");
    // Not granted to mark's personal project.
    assert_eq!(pick(&b, &Actor::new(t.mark.name.clone(), false), "sb").await.1.as_str(), "anonymous:mark");
    // The project's own credential comes before the grant.
    b.vault.put(&t.olga, Scope::Project(&a), &sb, "AKIATEAMA0001", "team-secret", false).await.unwrap();
    let (secret, project_id) = pick(&b, &t.mark, "sb").await;
    assert_eq!(secret, "team-secret");
    assert_ne!(project_id, system_id);
    let vm = launch(&b, &t.mark, "sb").await;
    assert_eq!(vm.credential_id, project_id, "the VM records the project's credential");
    // The member's own credential comes first.
    b.vault.put(&t.mark, Scope::User(&t.mark.name), &sb, "AKIAMARK0001", "mark-secret", false).await.unwrap();
    let (secret, user_id) = pick(&b, &t.mark, "sb").await;
    assert_eq!(secret, "mark-secret");
    assert!(![&system_id, &project_id].contains(&&user_id));
    let vm = launch(&b, &t.mark, "sb").await;
    assert_eq!(vm.credential_id, user_id, "the VM records the user's credential");
    // The owner, without keys of her own, still gets the project's.
    assert_eq!(pick(&b, &t.olga, "sb").await.1, project_id);
    // Another instance has none of them.
    assert!(pick(&b, &t.mark, "sb2").await.1.as_str().starts_with("anonymous:"));
    // The old call keeps its meaning: the personal project.
    assert_eq!(b.vault.credentials_for(&t.mark.name, &sb).await.unwrap().1, user_id);
    assert_eq!(b.vault.credentials_for(&t.olga.name, &sb).await.unwrap().1.as_str(), "anonymous:olga");
});

broker_test!(members_launch_with_the_project_credential_and_never_read_it, |b: Broker| async move {
    linux_image(&b).await;
    let t = team(&b).await;
    let sb = instance("sb");
    let a = project("team-a");
    let scope = Scope::Project(&a);
    // Only the project's owners store its credentials.
    let e = b.vault.put(&t.mark, scope, &sb, "AKIATEAMA0001", "team-secret", false).await.unwrap_err();
    assert!(matches!(e, ServiceError::Forbidden(_)), "a member stored one: {e}");
    let e = b.vault.put(&t.vera, scope, &sb, "AKIATEAMA0001", "team-secret", false).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Forbidden(m) if m.contains("viewer")), "a viewer stored one: {e}");
    let e = b.vault.put(&t.otto, scope, &sb, "AKIATEAMA0001", "team-secret", false).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Project(p)) if p == &a), "an outsider stored one: {e}");
    assert!(matches!(b.projects.enter(t.otto.clone(), &a).await, Err(ServiceError::NotFound(_))));
    let m = b.vault.put(&t.olga, scope, &sb, "AKIATEAMA0001", "team-secret", false).await.unwrap();
    assert_eq!((m.scope.as_str(), m.owner.as_str(), m.access_key_id.as_str()), ("project", "team-a", "****0001"));
    assert_eq!(m.granted_to, None);
    // Members and viewers see it masked, by every call; the secret never comes back.
    for who in [&t.olga, &t.mark, &t.vera] {
        let one = b.vault.get(who, scope, &sb).await.unwrap();
        let all = b.vault.list_project(who, &a).await.unwrap();
        assert_eq!(all, vec![one.clone()]);
        let shown = serde_json::to_string(&all).unwrap();
        assert!(!shown.contains("team-secret") && !shown.contains("AKIATEAMA0001"), "{shown}");
        assert_eq!(one.secret_access_key, "********");
    }
    assert!(matches!(b.vault.list_project(&t.otto, &a).await, Err(ServiceError::NotFound(Resource::Project(_)))));
    assert!(matches!(b.vault.get(&t.otto, scope, &sb).await, Err(ServiceError::NotFound(Resource::Project(_)))));
    // It is no user's: the personal lists do not show it.
    assert!(b.vault.list_user(&t.olga, &t.olga.name).await.unwrap().is_empty());
    // A member launches with it and acts on the VM with it.
    let vm = launch(&b, &t.mark, "sb").await;
    let (_, project_id) = pick(&b, &t.mark, "sb").await;
    assert_eq!(vm.credential_id, project_id);
    b.provisioning.action(&t.mark, &vm.id, VmAction::Stop).await.unwrap();
    // A viewer sees it and cannot act.
    assert_eq!(b.provisioning.get(&t.vera, &vm.id).await.unwrap().id, vm.id);
    assert!(matches!(b.provisioning.action(&t.vera, &vm.id, VmAction::Terminate).await, Err(ServiceError::Forbidden(_))));
    // Outside the project the credential acts on nothing.
    let e = b.vault.credentials_to_act(&t.otto, &project_id, "VM 'x'").await.unwrap_err();
    assert!(matches!(&e, ServiceError::Forbidden(m) if m.contains("team-a")), "{e}");
    assert!(b.vault.credentials_to_act(&admin(), &project_id, "VM 'x'").await.is_ok());
    // Not deleted while the project's VM made with it lives; viewers and members cannot delete it.
    assert!(matches!(b.vault.delete(&t.vera, scope, &sb).await, Err(ServiceError::Forbidden(_))));
    assert!(matches!(b.vault.delete(&t.mark, scope, &sb).await, Err(ServiceError::Forbidden(_))));
    let e = b.vault.delete(&t.olga, scope, &sb).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains(vm.id.as_str())), "{e}");
    b.provisioning.action(&t.mark, &vm.id, VmAction::Terminate).await.unwrap();
    for _ in 0..50 {
        if b.vault.delete(&t.olga, scope, &sb).await.is_ok() {
            break;
        }
        b.provisioning.reconcile("t").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(matches!(b.vault.get(&t.mark, scope, &sb).await, Err(ServiceError::NotFound(_))));
    assert!(pick(&b, &t.mark, "sb").await.1.as_str().starts_with("anonymous:"));
});

broker_test!(project_credentials_follow_the_sandbox_and_rotation_rules, |b: Broker| async move {
    let t = team(&b).await;
    let sb = instance("sb");
    let a = project("team-a");
    // A project's keys are shared: no user's sandbox account, the owner's included.
    for key in ["sandbox-mark", "sandbox-olga"] {
        let e = b.vault.put(&t.olga, Scope::Project(&a), &sb, key, "s", true).await.unwrap_err();
        assert!(matches!(e, ServiceError::Invalid { field: Some("access_key_id"), .. }), "{key}: {e}");
    }
    // An admin stores one for any existing project, none for a missing one.
    b.vault.put(&admin(), Scope::Project(&a), &sb, "AKIATEAMA0001", "team-secret", false).await.unwrap();
    let e = b.vault.put(&admin(), Scope::Project(&project("team-z")), &sb, "AKIATEAMZ0001", "s", false).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Project(_))), "{e}");
    assert!(matches!(b.vault.list_project(&admin(), &project("team-z")).await, Err(ServiceError::NotFound(Resource::Project(_)))));
    // Rotation re-seals it like every credential; it still opens.
    let r = b.vault.rotate(&admin()).await.unwrap();
    assert!(r.resealed >= 1, "{r:?}");
    assert_eq!(pick(&b, &t.mark, "sb").await.0, "team-secret");
    // A deleted project takes its credentials along: a new project of that name has none.
    b.projects.delete(&t.olga, &a).await.unwrap();
    let olga = Actor::new(t.olga.name.clone(), false);
    b.projects.create(&olga, &a, "team A again", None).await.unwrap();
    let olga = b.projects.enter(olga, &a).await.unwrap();
    assert!(b.vault.list_project(&olga, &a).await.unwrap().is_empty());
    assert_eq!(pick(&b, &olga, "sb").await.1.as_str(), "anonymous:olga");
});

broker_test!(a_grant_to_a_project_serves_every_member_until_revoked, |b: Broker| async move {
    linux_image(&b).await;
    let t = team(&b).await;
    let sb2 = instance("sb2");
    let a = project("team-a");
    let shared = CredentialName::parse("pool").unwrap();
    b.vault.put(&admin(), Scope::System(&shared), &sb2, "AKIAPOOL0001", "pool-secret", false).await.unwrap();
    // Grants name existing projects only.
    let e = b.vault.grant(&admin(), &shared, &sb2, &[project("team-z")]).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Project(_))), "{e}");
    assert!(matches!(b.vault.grant(&t.olga, &shared, &sb2, std::slice::from_ref(&a)).await, Err(ServiceError::Forbidden(_))));
    b.vault.grant(&admin(), &shared, &sb2, std::slice::from_ref(&a)).await.unwrap();
    let (_, id) = pick(&b, &t.mark, "sb2").await;
    assert_eq!(pick(&b, &t.olga, "sb2").await, ("pool-secret".to_string(), id.clone()));
    assert_eq!(pick(&b, &t.vera, "sb2").await.1, id);
    // Outside the team it is not granted.
    assert!(pick(&b, &t.otto, "sb2").await.1.as_str().starts_with("anonymous:"));
    let vm = launch(&b, &t.mark, "sb2").await;
    assert_eq!(vm.credential_id, id);
    // Another member acts on it with the grant.
    b.provisioning.action(&t.olga, &vm.id, VmAction::Stop).await.unwrap();
    // Revoked: every member's action is a 403 naming the revoked grant; admins still act.
    let listed = b.vault.grant(&admin(), &shared, &sb2, &[]).await.unwrap();
    assert_eq!(listed.granted_to, Some(vec![]));
    for who in [&t.mark, &t.olga] {
        let e = b.provisioning.action(who, &vm.id, VmAction::Terminate).await.unwrap_err();
        assert!(matches!(&e, ServiceError::Forbidden(m) if m.contains("pool") && m.contains("project 'team-a'")), "{e}");
    }
    let e = b.vault.credentials_to_act(&t.mark, &id, "VM 'x'").await.unwrap_err();
    assert!(matches!(e, ServiceError::Forbidden(_)), "{e}");
    assert!(pick(&b, &t.mark, "sb2").await.1.as_str().starts_with("anonymous:"));
    b.provisioning.action(&admin(), &vm.id, VmAction::Terminate).await.unwrap();
});

broker_test!(grants_to_users_are_grants_to_their_personal_projects, |b: Broker| async move {
    let alice = add_user(&b, "alice").await;
    let t = team(&b).await;
    let sb = instance("sb");
    let shared = CredentialName::parse("legacy").unwrap();
    b.vault.put(&admin(), Scope::System(&shared), &sb, "AKIALEGACY01", "legacy-secret", false).await.unwrap();
    let m = b.vault.grant_users(&admin(), &shared, &sb, std::slice::from_ref(&alice.name)).await.unwrap();
    assert_eq!(m.granted_to, Some(vec!["alice".to_string()]));
    assert_eq!(b.vault.credentials_for(&alice.name, &sb).await.unwrap().0.secret_access_key.expose(), "legacy-secret");
    // Granted to alice's personal project, not to the teams of others.
    assert!(pick(&b, &t.mark, "sb").await.1.as_str().starts_with("anonymous:"));
    let e = b.vault.grant_users(&admin(), &shared, &sb, &[user("nobody")]).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::User(_))), "{e}");
    // Both kinds together.
    let both = [ProjectName::personal(&alice.name), project("team-a")];
    let m = b.vault.grant(&admin(), &shared, &sb, &both).await.unwrap();
    assert_eq!(m.granted_to, Some(vec!["alice".to_string(), "team-a".to_string()]));
    assert_eq!(pick(&b, &t.mark, "sb").await.0, "legacy-secret");
    let listed = b.vault.list_shared(&admin()).await.unwrap();
    assert_eq!(listed[0].granted_to, Some(vec!["alice".to_string(), "team-a".to_string()]));
});

broker_test!(access_keys_act_in_their_project_with_the_current_role, |b: Broker| async move {
    let t = team(&b).await;
    let a = project("team-a");
    let holder = |id: String| {
        let b = b.clone();
        async move { b.access_keys.holder(&id).await.unwrap().map(|h| h.actor) }
    };
    let (personal, _) = b.access_keys.create_in(&t.mark, &t.mark.name, None, None).await.unwrap();
    let (team_key, _) = b.access_keys.create_in(&t.mark, &t.mark.name, Some(&a), None).await.unwrap();
    assert_eq!((personal.project.as_str(), team_key.project.as_str()), ("mark", "team-a"));
    let h = holder(team_key.access_key_id.clone()).await.unwrap();
    assert_eq!((h.name.as_str(), h.project.as_str(), h.role, h.is_admin), ("mark", "team-a", ProjectRole::Member, false));
    assert!(h.require_act().is_ok());
    let h = holder(personal.access_key_id.clone()).await.unwrap();
    assert_eq!((h.project.as_str(), h.role), ("mark", ProjectRole::Owner));
    // No key for a project one is no member of, nor one that does not exist.
    let e = b.access_keys.create_in(&t.otto, &t.otto.name, Some(&a), None).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Project(_))), "{e}");
    let e = b.access_keys.create_in(&admin(), &t.otto.name, Some(&a), None).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Project(_))), "an admin cannot make one for a non-member: {e}");
    let e = b.access_keys.create_in(&t.mark, &t.mark.name, Some(&project("team-z")), None).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Project(_))), "{e}");
    // A viewer's key reads and cannot act.
    let (viewer_key, _) = b.access_keys.create_in(&t.vera, &t.vera.name, Some(&a), None).await.unwrap();
    let h = holder(viewer_key.access_key_id.clone()).await.unwrap();
    assert_eq!(h.role, ProjectRole::Viewer);
    assert!(matches!(h.require_act(), Err(ServiceError::Forbidden(_))));
    // An admin's key acts as an owner of any project, member or not.
    let sup = cloudbroker_core::testing::user("super");
    let (admin_key, _) = b.access_keys.create_in(&admin(), &sup, Some(&a), None).await.unwrap();
    let h = holder(admin_key.access_key_id.clone()).await.unwrap();
    assert_eq!((h.project.as_str(), h.role, h.is_admin), ("team-a", ProjectRole::Owner, true));
    // A role change and a removal take effect at once (the cached holder is forgotten).
    b.projects.set_member(&t.olga, &a, &t.mark.name, ProjectRole::Viewer).await.unwrap();
    assert_eq!(holder(team_key.access_key_id.clone()).await.unwrap().role, ProjectRole::Viewer);
    b.projects.remove_member(&t.olga, &a, &t.mark.name).await.unwrap();
    assert_eq!(holder(team_key.access_key_id.clone()).await, None, "a removed member's key still works");
    assert!(holder(personal.access_key_id.clone()).await.is_some(), "the personal key stopped working");
    // The listing keeps the key, showing its project.
    let listed = b.access_keys.list(&t.mark, &t.mark.name).await.unwrap();
    assert!(listed.iter().any(|k| k.access_key_id == team_key.access_key_id && k.project == a));
});
