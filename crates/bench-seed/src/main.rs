//! Seeds a broker database with VM rows for the benchmarks in `bench/`,
//! through `cloudbroker-store` (the broker's own schema and insert code, so
//! the seed cannot drift from what the broker writes). Never used by the
//! broker itself. The invariant: after a run, the database holds exactly
//! `--rows` VM rows more than before, `--live` of them live (`running`) and
//! owned by `--user` on `--instance`, the rest spread over `--other-users`
//! users, `--terminated-pct` percent of all rows terminated. With
//! `--leases N`, the first N live rows (the bench user's first) also get a
//! lease (`terminate`, set through the store's own `set_vm_lease`): the first
//! `--leases-due D` of them expired a minute ago, the rest end between two
//! hours and 30 days from now (warnings an hour before), so a lease pass
//! finds exactly D due and no warning due. `--ended-leases E` gives the
//! first E terminated rows a lease that ended a day ago and was dealt with
//! (set, claimed and finished through the store's lease functions): the
//! history of leases a long-running broker accumulates.
//!
//! With `--history N` (issue 25's cost benchmark), every seeded VM also gets
//! a state history of N changes on average (between N-4 and N+4, by the
//! row's number), consistent with its state: `pending`, `running`, then
//! stop/start cycles (`stopping`, `stopped`, `pending`, `running`) and, for
//! terminated rows, `shutting-down`, `terminated`; spread over the last
//! `--history-days D` days (default 30) up to now, the live rows' last
//! change before now. The history is written in bulk in the order of its
//! times (`Store::seed_state_history`, replacing the row the insert
//! trigger wrote), and each record's `created_at` / `updated_at` are its
//! first and last change. `--types a,b` cycles the rows' instance types
//! (default `small`) and `--instances x,y` the other users' rows'
//! connector instances (default `--instance`).
//!
//! `--plans leases --now MS` seeds nothing: it prints the plan of each of
//! the lease worker's statements (`Store::query_plans`, the generic plan
//! executed at `MS` on PostgreSQL), each after a line `-- name`, for
//! `bench/run leases` to check.
//!
//! ```text
//! cloudbroker-bench-seed --database-url URL --user bench --instance bench \
//!     --rows 10000 --live 100 [--other-users 100] [--terminated-pct 90] \
//!     [--leases 100 --leases-due 0 --ended-leases 0] \
//!     [--history 10 --history-days 30 --types t2.micro,m5.large --instances bench,bench2]
//! cloudbroker-bench-seed --database-url URL --plans leases --now MS
//! ```

use cloudbroker_model::{
    ClientToken, CredentialId, InstanceName, LaunchId, LeaseAction, NewLease, ProjectName, Tags, UserName, VmId, VmStatus,
};
use cloudbroker_store::vms::VmRow;
use cloudbroker_store::Store;
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use std::process::ExitCode;

struct Args {
    url: String,
    user: String,
    instance: String,
    rows: u64,
    live: u64,
    other_users: u64,
    terminated_pct: u64,
    leases: u64,
    leases_due: u64,
    ended_leases: u64,
    history: u64,
    history_days: u64,
    types: Vec<String>,
    instances: Vec<String>,
    /// `--plans leases`: print plans instead of seeding.
    plans: Option<String>,
    now: Option<i64>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        user: "bench".into(),
        instance: "bench".into(),
        rows: 10_000,
        live: 100,
        other_users: 100,
        terminated_pct: 90,
        leases: 0,
        leases_due: 0,
        ended_leases: 0,
        history: 0,
        history_days: 30,
        types: vec!["small".into()],
        instances: Vec::new(),
        plans: None,
        now: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag}: missing value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag}: '{v}' is not a non-negative integer"));
        match flag.as_str() {
            "--database-url" => a.url = value,
            "--user" => a.user = value,
            "--instance" => a.instance = value,
            "--rows" => a.rows = num(&value)?,
            "--live" => a.live = num(&value)?,
            "--other-users" => a.other_users = num(&value)?.max(1),
            "--terminated-pct" => a.terminated_pct = num(&value)?.min(100),
            "--leases" => a.leases = num(&value)?,
            "--leases-due" => a.leases_due = num(&value)?,
            "--ended-leases" => a.ended_leases = num(&value)?,
            "--history" => a.history = num(&value)?,
            "--history-days" => a.history_days = num(&value)?.max(1),
            "--types" => a.types = list(&value),
            "--instances" => a.instances = list(&value),
            "--plans" if value == "leases" => a.plans = Some(value),
            "--plans" => return Err(format!("--plans: '{value}' is not a statement set (leases)")),
            "--now" => a.now = Some(num(&value)? as i64),
            other => return Err(format!("unknown flag '{other}'")),
        }
    }
    if a.types.is_empty() {
        return Err("--types: no instance type given".into());
    }
    if a.instances.is_empty() {
        a.instances = vec![a.instance.clone()];
    }
    if a.url.is_empty() {
        return Err("--database-url is required".into());
    }
    if a.live > a.rows {
        return Err(format!("--live ({}) is more than --rows ({})", a.live, a.rows));
    }
    if a.leases_due > a.leases {
        return Err(format!("--leases-due ({}) is more than --leases ({})", a.leases_due, a.leases));
    }
    Ok(a)
}

/// A comma-separated list, blanks dropped.
fn list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn row(user: &str, instance: &str, instance_type: &str, state: &str, n: u64) -> Result<VmRow, String> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut tags = BTreeMap::new();
    tags.insert("bench".to_string(), format!("row-{n}"));
    let now = chrono_now();
    Ok(VmRow {
        id: VmId::parse(&format!("vm-{}", &id[..17])).map_err(|e| format!("VM id: {e}"))?,
        launch_id: LaunchId::generate(),
        launch_index: 0,
        user: UserName::from_stored(user.to_string()),
        // The user's personal project (named after them).
        project: ProjectName::from_stored(user.to_string()),
        instance: InstanceName::parse(instance).map_err(|e| format!("--instance: {e}"))?,
        credential_id: CredentialId::from_stored(String::new()),
        client_token: ClientToken::parse(&format!("seed-{id}")).map_err(|e| format!("client token: {e}"))?,
        name: format!("seed-{n}"),
        image: "ubuntu-22.04".into(),
        image_id: "sandbox-ubuntu-22.04".into(),
        instance_type: instance_type.to_string(),
        state: VmStatus::parse(state).map_err(|e| format!("VM state: {e}"))?,
        cloud_id: Some(format!("i-{}", &id[..17])),
        private_ip: Some(format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)),
        public_ip: None,
        key_name: None,
        error: None,
        tags: Tags::from_stored(tags),
        created_at: now,
        updated_at: now,
        version: 0,
        lease: None,
    })
}

/// The lease of the `k`-th leased row: due a minute ago for the first
/// `due`, else ending between 2 h and 30 days from `now` (ms), spread evenly.
fn lease(k: u64, due: u64, leased: u64, now: i64) -> NewLease {
    const HOUR: i64 = 3_600_000;
    let expires_at = if k < due {
        now - 60_000
    } else {
        let span = 30 * 24 * HOUR - 2 * HOUR;
        now + 2 * HOUR + (span as i128 * (k - due) as i128 / (leased - due).max(1) as i128) as i64
    };
    NewLease { expires_at, action: LeaseAction::Terminate, warn_at: expires_at - HOUR }
}

/// One row to seed: user, state, number, and its lease (true: ended and dealt with).
type Spec<'a> = (String, &'a str, u64, Option<(NewLease, bool)>);

/// A well-mixed 64-bit value of `x` (splitmix64): the seed's "random" choices, repeatable.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The state history of row `n` (final state `state`): about `avg`
/// changes (`avg - 4 ..= avg + 4`), spread over `[now - days, now)` (ms).
/// A terminated row ends `shutting-down`, `terminated` after any prefix of
/// the run/stop cycle (so its count is exact); a live one after a whole
/// cycle (`running`).
fn history_of(n: u64, state: &str, avg: u64, days: u64, now: i64) -> Vec<(&'static str, i64)> {
    const CYCLE: [&str; 4] = ["stopping", "stopped", "pending", "running"];
    let target = (avg + (mix(n) % 9)).saturating_sub(4).max(3) as usize;
    let terminated = state == "terminated";
    let body = if terminated { target - 2 } else { 2 + (target - 2) / 4 * 4 };
    let mut states: Vec<&'static str> = vec!["pending", "running"];
    states.extend((0..body.saturating_sub(2)).map(|i| CYCLE[i % 4]));
    states.truncate(body.max(1));
    if terminated {
        states.extend(["shutting-down", "terminated"]);
    }
    let window = (days * 86_400_000) as i64;
    // Created somewhere in the first 90% of the window; the last change
    // before now (live rows) or somewhere after the first (terminated).
    let start = now - window + (mix(n ^ 0xA5A5) % (window as u64 * 9 / 10)) as i64;
    let end = if terminated { start + (mix(n ^ 0x5A5A) % ((now - 60_000 - start).max(1) as u64)) as i64 } else { now - 60_000 };
    let step = ((end - start) / states.len() as i64).max(1);
    states.iter().enumerate().map(|(i, s)| (*s, start + step * i as i64)).collect()
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    cloudbroker_store::ms_to_time(cloudbroker_store::now_ms())
}

/// Prints the plans of the lease worker's statements at `--now`.
async fn plans(a: &Args) -> Result<(), String> {
    let now = a.now.ok_or("--plans needs --now MS")?;
    let store = Store::open(&a.url).await.map_err(|e| e.to_string())?;
    let statements = cloudbroker_store::vm_leases::lease_statements();
    let plans =
        store.query_plans(&statements, cloudbroker_store::plans::PlanKind::GenericExecuted(now)).await.map_err(|e| e.to_string())?;
    for (name, plan) in plans {
        println!("-- {name}\n{plan}");
    }
    Ok(())
}

async fn seed(a: &Args) -> Result<(), String> {
    let store = Store::open(&a.url).await.map_err(|e| e.to_string())?;
    let others: Vec<String> = (0..a.other_users).map(|i| format!("seed-user-{i:04}")).collect();
    for name in std::iter::once(&a.user).chain(others.iter()) {
        if store.get_user(name).await.map_err(|e| e.to_string())?.is_none() {
            // "!" is no Argon2 hash: seeded users cannot sign in.
            store.create_user(name, "!", false).await.map_err(|e| e.to_string())?;
        }
    }
    let terminated = a.rows * a.terminated_pct / 100;
    let rest = a.rows - a.live;
    let concurrency = match store.backend() {
        cloudbroker_store::Backend::Sqlite => 1,
        cloudbroker_store::Backend::Postgres => 8,
    };
    let specs: Vec<(String, &str, u64)> = (0..a.rows)
        .map(|n| {
            if n < a.live {
                (a.user.clone(), "running", n)
            } else {
                let k = n - a.live;
                // Terminated rows first (up to the share asked for), then live ones of other users.
                let state = if k < terminated.min(rest) { "terminated" } else { "running" };
                (others[(k as usize) % others.len()].clone(), state, n)
            }
        })
        .collect();
    // The k-th live row gets lease k while k < --leases; the first
    // --ended-leases terminated rows a lease dealt with a day ago.
    const DAY: i64 = 86_400_000;
    let now = cloudbroker_store::now_ms();
    let (mut live_seen, mut ended_seen) = (0u64, 0u64);
    let specs: Vec<Spec> = specs
        .into_iter()
        .map(|(user, state, n)| {
            let l = if state == "running" {
                live_seen += 1;
                (live_seen <= a.leases).then(|| (lease(live_seen - 1, a.leases_due, a.leases, now), false))
            } else {
                ended_seen += 1;
                (ended_seen <= a.ended_leases)
                    .then(|| (NewLease { expires_at: now - DAY, action: LeaseAction::Terminate, warn_at: now - DAY - DAY / 24 }, true))
            };
            (user, state, n, l)
        })
        .collect();
    let leased = specs.iter().filter(|s| matches!(s.3, Some((_, false)))).count();
    let ended = specs.iter().filter(|s| matches!(s.3, Some((_, true)))).count();
    if (leased as u64) < a.leases || (ended as u64) < a.ended_leases {
        return Err(format!(
            "--leases {} / --ended-leases {}: only {leased} live and {ended} terminated rows to give one",
            a.leases, a.ended_leases
        ));
    }
    let started = std::time::Instant::now();
    let inserted: Vec<Option<(String, &str, u64)>> = stream::iter(specs)
        .map(|(user, state, n, l)| {
            let store = &store;
            // The bench user's live rows on --instance, the others' cycling over --instances.
            let instance = if n < a.live { a.instance.as_str() } else { a.instances[(n as usize) % a.instances.len()].as_str() };
            let instance_type = a.types[(mix(n ^ 0x7777) % a.types.len() as u64) as usize].as_str();
            async move {
                let r = row(&user, instance, instance_type, state, n)?;
                let fresh = store.insert_adopted_vm(&r).await.map_err(|e| e.to_string())?;
                if let (true, Some((l, ended))) = (fresh, l) {
                    let e = |e: cloudbroker_store::StoreError| e.to_string();
                    store.set_vm_lease(&r.id, Some(&l)).await.map_err(e)?;
                    if ended {
                        let at = l.expires_at + 1_000;
                        store.claim_vm_lease(&r.id, "bench-seed", at, 120_000).await.map_err(e)?;
                        store.finish_vm_lease(&r.id, "bench-seed", at, "terminated by its lease (seeded history)").await.map_err(e)?;
                    }
                }
                Ok::<Option<(String, &str, u64)>, String>(fresh.then(|| (r.id.to_string(), state, n)))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let fresh = inserted.iter().filter(|b| b.is_some()).count();
    let mut history_rows = 0u64;
    if a.history > 0 {
        let t = std::time::Instant::now();
        let rows: Vec<(String, String, i64)> = inserted
            .iter()
            .flatten()
            .flat_map(|(id, state, n)| {
                history_of(*n, state, a.history, a.history_days, now).into_iter().map(move |(s, at)| (id.clone(), s.to_string(), at))
            })
            .collect();
        history_rows = store.seed_state_history(&rows).await.map_err(|e| e.to_string())?;
        println!("seeded {history_rows} state history rows over {} days in {:.1} s", a.history_days, t.elapsed().as_secs_f64());
    }
    println!(
        "seeded {fresh} VM rows ({} live for '{}' on '{}', {terminated} terminated, {} other users, {leased} leases of which {} due, {ended} ended leases, {history_rows} history rows) in {:.1} s",
        a.live,
        a.user,
        a.instance,
        others.len(),
        a.leases_due,
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cloudbroker-bench-seed: {e}");
            return ExitCode::from(2);
        }
    };
    let done = if args.plans.is_some() { plans(&args).await } else { seed(&args).await };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloudbroker-bench-seed: {e}");
            ExitCode::FAILURE
        }
    }
}
