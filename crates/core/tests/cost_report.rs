//! The cost report over many VMs (issue 25), on SQLite and on PostgreSQL:
//! whatever the VMs' histories (spans across day edges, ending exactly on
//! one, shorter than the billing minimum, across a price change, still
//! running, on two instances with a markup on one, an unpriced type), each
//! line of the report (per day and per month; by user, instance and tag)
//! is exactly the sum of its VMs' own costs over that line's bucket, as
//! `vm_cost` bills each VM alone from its own history. Also with prices
//! changing mid-day on both instances (spans shorter than the minimum
//! across the change, one starting at its instant), a per-instance
//! minimum, state changes written through the store after the seeded
//! history (so the running spans' trigger follows live writes, a late stop
//! at the cloud's time included), and reports of one user.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Duration, Utc};
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::costs::metering::Period;
use cloudbroker_core::costs::money::Micros;
use cloudbroker_core::costs::report::{Granularity, GroupBy, ReportQuery};
use cloudbroker_core::domain::{ClientToken, CredentialId, InstanceName, LaunchId, ProjectName, Tags, UserName, VmId, VmStatus};
use cloudbroker_core::testing::user;
use cloudbroker_core::{Actor, Broker, Config};
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};
use cloudbroker_store::vms::{VmRow, VmUpdate};
use std::collections::BTreeMap;
use std::path::Path;

const DAY: i64 = 86_400;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc) + Duration::seconds(secs)
}

fn write_files(dir: &Path) {
    let conn = dir.join("connectors.d");
    std::fs::create_dir_all(conn.join("prices")).unwrap();
    // sb2 bills at least 150 s per start (sb: the default, 60 s).
    std::fs::write(
        conn.join("sb.conf"),
        "cloud.connector.class = sb:sandbox, sb2:sandbox\nsb.boot.delay.ms = 0\nsb2.boot.delay.ms = 0\nsb2.billing.minimum.seconds = 150\n",
    )
    .unwrap();
    // t2.small 3.6/h, 7.2/h from day 2 noon; t2.micro 0.36/h, 1.08/h from
    // day 4 06:30 on sb (mid-day), 0.36/h, 0.54/h from day 3 12:00:17 on sb2;
    // m5.large unpriced; sb2 +10%.
    std::fs::write(
        conn.join("prices").join("sb.conf"),
        "currency = USD\nsb.price.instance.t2.small = 3.6\nsb.price.instance.t2.small @ 2026-12-02T12:00:00Z = 7.2\n\
         sb.price.instance.t2.micro = 0.36\nsb.price.instance.t2.micro @ 2026-12-04T06:30:00Z = 1.08\n\
         sb2.markup = 10\nsb2.price.instance.t2.small = 3.6\nsb2.price.instance.t2.micro = 0.36\n\
         sb2.price.instance.t2.micro @ 2026-12-03T12:00:17Z = 0.54\n",
    )
    .unwrap();
}

/// A repeatable pseudo-random sequence (splitmix64).
struct Mix(u64);
impl Mix {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % below
    }
}

/// The histories: hand-made edge cases first, then random ones (seconds from t(0)).
fn histories() -> Vec<Vec<(&'static str, i64)>> {
    let mut h: Vec<Vec<(&'static str, i64)>> = vec![
        // Across the first day's edge.
        vec![("pending", 80_000), ("running", 80_010), ("stopping", 90_000), ("stopped", 90_030)],
        // Ending exactly on a day's edge.
        vec![("pending", 85_000), ("running", 86_000), ("stopping", DAY), ("stopped", DAY + 5)],
        // Shorter than the minimum, inside a day; then again, ending on an edge.
        vec![
            ("pending", 2 * DAY + 90),
            ("running", 2 * DAY + 100),
            ("stopped", 2 * DAY + 130),
            ("running", 3 * DAY - 30),
            ("stopped", 3 * DAY),
        ],
        // Across the price change, then terminated.
        vec![("pending", DAY + 40_000), ("running", DAY + 40_001), ("shutting-down", 2 * DAY + 50_000), ("terminated", 2 * DAY + 50_010)],
        // Still running.
        vec![("pending", 3 * DAY + 1), ("running", 3 * DAY + 2)],
        // Running twice in a row (the first start counts), then stopped.
        vec![("pending", 10), ("running", 20), ("running", 500), ("stopped", 4 * DAY)],
        // (n = 6: sb, t2.small) Shorter than the minimum across sb's
        // t2.small change (DAY + 43200: day 2 noon): its minimum at the old
        // price; then another as short, after the change.
        vec![
            ("pending", DAY + 43_000),
            ("running", DAY + 43_190),
            ("stopped", DAY + 43_210),
            ("running", DAY + 43_220),
            ("stopped", DAY + 43_250),
        ],
        // (n = 7: sb2, t2.micro) Across sb2's t2.micro change (2 DAY + 43217),
        // under sb2's 150 s minimum, then long across it.
        vec![
            ("pending", 2 * DAY + 43_100),
            ("running", 2 * DAY + 43_150),
            ("stopped", 2 * DAY + 43_230),
            ("running", 2 * DAY + 43_000 + 600),
            ("stopping", 3 * DAY + 43_217),
            ("stopped", 3 * DAY + 43_300),
        ],
    ];
    let mut mix = Mix(25);
    const STATES: [&str; 6] = ["pending", "running", "stopping", "stopped", "running", "shutting-down"];
    for _ in 0..34 {
        let mut at = mix.next(4 * DAY as u64) as i64;
        let mut v = Vec::new();
        for _ in 0..(2 + mix.next(9)) {
            let s = STATES[mix.next(STATES.len() as u64) as usize];
            v.push((s, at));
            let gap = if mix.next(3) == 0 { 50 } else { 40_000 };
            at += 1 + mix.next(gap) as i64;
            if at >= 5 * DAY {
                break;
            }
        }
        h.push(v);
    }
    h
}

fn row(n: usize, user: &str, instance: &str, instance_type: &str, state: &str, team: Option<&str>) -> VmRow {
    let mut tags = BTreeMap::new();
    if let Some(team) = team {
        tags.insert("team".to_string(), team.to_string());
    }
    let now = t(0);
    VmRow {
        id: VmId::parse(&format!("vm-{n:017x}")).unwrap(),
        launch_id: LaunchId::generate(),
        launch_index: 0,
        user: UserName::from_stored(user.to_string()),
        project: ProjectName::from_stored(user.to_string()),
        instance: InstanceName::parse(instance).unwrap(),
        credential_id: CredentialId::from_stored(String::new()),
        client_token: ClientToken::parse(&format!("report-{n}")).unwrap(),
        name: format!("vm-{n}"),
        image: "linux".into(),
        image_id: "ami-sandbox-debian-12".into(),
        instance_type: instance_type.into(),
        state: VmStatus::parse(state).unwrap(),
        cloud_id: Some(format!("i-{n:017x}")),
        private_ip: None,
        public_ip: None,
        key_name: None,
        error: None,
        tags: Tags::from_stored(tags),
        created_at: now,
        updated_at: now,
        version: 0,
        lease: None,
    }
}

/// (vms, seconds, starts, cost, unpriced seconds) per (bucket start, group).
type Lines = BTreeMap<(DateTime<Utc>, String), (u32, i64, u32, Micros, i64)>;

fn buckets(from: i64, to: i64, g: Granularity) -> Vec<Period> {
    match g {
        Granularity::Month => vec![Period { from: t(from), to: t(to) }],
        Granularity::Day => {
            (from / DAY..(to + DAY - 1) / DAY).map(|d| Period { from: t(d * DAY), to: t(((d + 1) * DAY).min(to)) }).collect()
        }
    }
}

async fn scenario(dir: &Path, db: Option<String>) {
    write_files(dir);
    let mut config = Config::for_tests(dir, db);
    config.admin_password = Some(SecretString::new("super-password-1"));
    let b = Broker::start(config, common::connectors()).await.unwrap();
    b.clock.set(t(0));
    for name in ["alice", "bob", "carol"] {
        b.identity.create_user(&Actor::system(), &user(name), &SecretString::new("a-password-1"), false).await.unwrap();
    }
    let users = ["alice", "bob", "carol"];
    let types = ["t2.small", "t2.micro", "m5.large"];
    let mut groups: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    let mut history_rows = Vec::new();
    for (n, h) in histories().into_iter().enumerate() {
        let (u, i, ty) = (users[n % 3], if n % 4 == 3 { "sb2" } else { "sb" }, types[n % types.len()]);
        let team = (n % 5 != 0).then_some(if n % 2 == 0 { "red" } else { "blue" });
        let r = row(n, u, i, ty, h.last().unwrap().0, team);
        assert!(b.store().insert_adopted_vm(&r).await.unwrap());
        groups.insert(r.id.to_string(), (u.to_string(), i.to_string(), team.unwrap_or("(untagged)").to_string()));
        history_rows.extend(h.iter().map(|(s, at)| (r.id.to_string(), s.to_string(), t(*at).timestamp_millis())));
    }
    b.store().seed_state_history(&history_rows).await.unwrap();
    // State changes written as the broker writes them (through the
    // triggers), after the seeded history: starts, stops, a start while
    // running, and a stop learnt late at the cloud's time.
    let ids: Vec<VmId> = groups.keys().map(|id| VmId::parse(id).unwrap()).collect();
    let live: [(usize, &str, i64); 9] = [
        (0, "running", 5 * DAY - 5_000),
        (1, "running", 5 * DAY - 4_990),
        (0, "stopping", 5 * DAY - 4_975),
        (0, "stopped", 5 * DAY - 4_970),
        (2, "running", 5 * DAY - 4_000),
        (2, "pending", 5 * DAY - 3_000),
        (2, "running", 5 * DAY - 2_990),
        (0, "running", 5 * DAY - 2_000),
        (1, "terminated", 5 * DAY - 1_000),
    ];
    for (n, state, at) in live {
        b.clock.set(t(at));
        b.store().update_vm(&VmUpdate::state(&ids[n], VmStatus::parse(state).unwrap())).await.unwrap();
    }
    // VM 3: seen stopped at 5 DAY - 700, stopped by the cloud at 5 DAY - 900.
    b.clock.set(t(5 * DAY - 1_500));
    b.store().update_vm(&VmUpdate::state(&ids[3], VmStatus::Running)).await.unwrap();
    b.clock.set(t(5 * DAY - 700));
    let v3 = b.store().get_vm(&ids[3]).await.unwrap().unwrap();
    assert!(b.store().observe_vm_since(&ids[3], v3.version, VmStatus::Stopped, (None, None), None, Some(t(5 * DAY - 900))).await.unwrap());
    b.clock.set(t(5 * DAY - 600));
    let to = 5 * DAY - 600;
    // From the first instant, and from day 2 on (VMs with entries before the period).
    for (from, g) in [(0, Granularity::Day), (0, Granularity::Month), (DAY, Granularity::Day), (DAY, Granularity::Month)] {
        for by in [GroupBy::User, GroupBy::Instance, GroupBy::Tag("team".into())] {
            let mut expected: Lines = BTreeMap::new();
            for (id, (u, i, team)) in &groups {
                let vm = b.provisioning.get(&Actor::system(), &VmId::parse(id).unwrap()).await.unwrap();
                let group = match &by {
                    GroupBy::User => u.clone(),
                    GroupBy::Instance => i.clone(),
                    _ => team.clone(),
                };
                for p in buckets(from, to, g) {
                    let u = b.costs.vm_cost(&vm, Some(p)).await.unwrap().usage;
                    if u.seconds == 0 {
                        continue;
                    }
                    let e = expected.entry((p.from, group.clone())).or_insert((0, 0, 0, Micros(0), 0));
                    *e = (e.0 + 1, e.1 + u.seconds, e.2 + u.starts, e.3 + u.cost, e.4 + u.unpriced_seconds);
                }
            }
            let q = ReportQuery {
                from: t(from),
                to: t(6 * DAY),
                group_by: by.clone(),
                granularity: g,
                user: None,
                project: None,
                instance: None,
            };
            let r = b.costs.report(&Actor::system(), &q).await.unwrap();
            let got: Lines =
                r.lines.iter().map(|l| ((l.bucket, l.group.clone()), (l.vms, l.seconds, l.starts, l.cost, l.unpriced_seconds))).collect();
            assert_eq!(got, expected, "from {from}, {g:?} by {by:?}");
            // One user's report (read through the spans' VM index): that user's lines.
            if by == GroupBy::User {
                let alice = ReportQuery { user: Some(UserName::from_stored("alice".into())), ..q.clone() };
                let mine: Lines = expected.iter().filter(|((_, group), _)| group == "alice").map(|(k, v)| (k.clone(), *v)).collect();
                let r = b.costs.report(&Actor::system(), &alice).await.unwrap();
                let got: Lines = r
                    .lines
                    .iter()
                    .map(|l| ((l.bucket, l.group.clone()), (l.vms, l.seconds, l.starts, l.cost, l.unpriced_seconds)))
                    .collect();
                assert_eq!(got, mine, "alice, from {from}, {g:?}");
                assert!(!mine.is_empty());
            }
            assert!(
                expected.len() >= 2 && expected.values().any(|e| e.4 > 0) && expected.values().any(|e| e.3 > Micros(0)),
                "{expected:?}"
            );
            assert!(r.unpriced.contains(&("sb".to_string(), "m5.large".to_string())), "{:?}", r.unpriced);
            assert!(r.unpriced.iter().all(|(_, ty)| ty == "m5.large"), "{:?}", r.unpriced);
        }
    }
    // VM 7 to the micro-dollar: 67 s at 0.36/h and 13 s at 0.54/h (the
    // change at 12:00:17), sb2's minimum of 150 s owing 70 s at the price
    // of its start, then 86,017 s at 0.54/h; all +10%.
    let vm7 = b.provisioning.get(&Actor::system(), &ids[7]).await.unwrap();
    let u = b.costs.vm_cost(&vm7, Some(Period { from: t(0), to: t(to) })).await.unwrap().usage;
    assert_eq!((u.seconds, u.starts, u.cost), (80 + 70 + 86_017, 2, Micros(7_370 + 2_145 + 7_700 + 14_192_805)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_report_line_is_the_sum_of_its_vms_costs_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_report_line_is_the_sum_of_its_vms_costs_postgres() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), Some(TestDb::create_postgres_database(&base).await.unwrap())).await;
}
