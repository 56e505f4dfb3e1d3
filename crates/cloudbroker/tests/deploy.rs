//! The examples in `deploy/` stay deployable and consistent with the broker:
//! every Kubernetes manifest is a named object; the Deployment (2+ replicas)
//! selects its own pods, as do the Service and the PodDisruptionBudget; its
//! probes hit /healthz and /readyz on the container port; the master key comes
//! from a Secret (mode 0400) and reaches the broker only through read-only
//! mounts; every Secret and ConfigMap it references is defined; the
//! kustomization lists every file. The systemd unit is hardened, reloads
//! with SIGHUP and passes `systemd-analyze verify` (when installed); the
//! Dockerfile is multi-stage, non-root, health-checked on /healthz and free of
//! `:latest`. Every setting these files give the broker (flags, TOML keys,
//! CLOUDBROKER_* variables) is accepted by the real binary, and the master key
//! recipe of the README makes a file the broker loads. Each checker is also
//! shown to reject deliberately broken copies.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::bin;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Seconds the broker may take to stop after SIGTERM: the deadline `serve`
/// gives in-flight requests and background work (both stop concurrently).
fn shutdown_deadline_secs() -> u64 {
    cloudbroker_web::SHUTDOWN_TIMEOUT_SECS
}

/// Whether the broker reads the environment variable `name` (set to `value`).
fn recognized(name: &str, value: &str) -> bool {
    if name == "CLOUDBROKER_CONFIG" {
        // A clap `env` of the --config flag, not a RawConfig setting.
        return read("crates/cloudbroker/src/cli.rs").contains("env = \"CLOUDBROKER_CONFIG\"");
    }
    let default = format!("{:?}", cloudbroker_core::RawConfig::default());
    match cloudbroker_core::RawConfig::from_env(vec![(name.to_string(), value.to_string())]) {
        Ok(c) => format!("{c:?}") != default,
        // It was read, and the value refused (e.g. a *_FILE that does not exist).
        Err(e) => e.to_string().contains(name),
    }
}

// ---------------------------------------------------------------- Kubernetes

const K8S: &str = "deploy/kubernetes";

/// (file name, document) for every non-empty YAML document of the folder.
fn load_manifests() -> Vec<(String, Value)> {
    let mut docs = Vec::new();
    for file in yaml_files() {
        let text = read(&format!("{K8S}/{file}"));
        for de in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(de).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !v.is_null() {
                docs.push((file.clone(), v));
            }
        }
    }
    docs
}

fn yaml_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join(K8S))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    files.sort();
    files
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn seq<'a>(v: &'a Value, path: &[&str]) -> Vec<&'a Value> {
    get(v, path).and_then(Value::as_sequence).map(|s| s.iter().collect()).unwrap_or_default()
}

/// An integer as Kubernetes reads YAML (1.1): `0400` is octal.
fn k8s_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(t) if t.len() > 1 && t.starts_with('0') && t.chars().all(|c| ('0'..='7').contains(&c)) => {
            i64::from_str_radix(t, 8).ok()
        }
        _ => None,
    }
}

fn labels(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_mapping)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

fn truthy(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool) == Some(true)
}

/// Every problem found in the manifests of the folder (`docs`, with the
/// folder's YAML file names `files`); empty when all is well.
fn check_kubernetes(docs: &[(String, Value)], files: &[String]) -> Vec<String> {
    let mut p = Vec::new();
    let deadline = shutdown_deadline_secs();
    let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut configmaps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, d) in docs {
        for key in ["apiVersion", "kind"] {
            if s(d, &[key]).unwrap_or_default().is_empty() {
                p.push(format!("{file}: a document has no {key}"));
            }
        }
        if s(d, &["metadata", "name"]).unwrap_or_default().is_empty() {
            p.push(format!("{file}: a document has no metadata.name"));
        }
        if s(d, &["metadata", "namespace"]).is_some() {
            p.push(format!("{file}: sets metadata.namespace (the manifests are namespace-agnostic)"));
        }
        let name = s(d, &["metadata", "name"]).unwrap_or_default().to_string();
        let keys = |field: &str| -> BTreeSet<String> {
            get(d, &[field])
                .and_then(Value::as_mapping)
                .map(|m| m.keys().filter_map(|k| k.as_str().map(String::from)).collect())
                .unwrap_or_default()
        };
        match s(d, &["kind"]) {
            Some("Secret") => {
                secrets.insert(name, keys("data").union(&keys("stringData")).cloned().collect());
            }
            Some("ConfigMap") => {
                configmaps.insert(name, keys("data").union(&keys("binaryData")).cloned().collect());
            }
            _ => {}
        }
    }

    // The kustomization lists exactly the other YAML files of the folder.
    match docs.iter().find(|(_, d)| s(d, &["kind"]) == Some("Kustomization")) {
        None => p.push("no Kustomization".into()),
        Some((_, k)) => {
            let listed: BTreeSet<String> = seq(k, &["resources"]).iter().filter_map(|v| v.as_str().map(String::from)).collect();
            let expected: BTreeSet<String> = files.iter().filter(|f| !f.starts_with("kustomization.")).cloned().collect();
            for f in expected.difference(&listed) {
                p.push(format!("kustomization.yaml does not list {f}"));
            }
            for f in listed.difference(&expected) {
                p.push(format!("kustomization.yaml lists {f}, which is not in {K8S}"));
            }
        }
    }

    let deployments: Vec<&Value> = docs.iter().map(|(_, d)| d).filter(|d| s(d, &["kind"]) == Some("Deployment")).collect();
    let [dep] = deployments.as_slice() else {
        p.push(format!("expected one Deployment, found {}", deployments.len()));
        return p;
    };
    match get(dep, &["spec", "replicas"]).and_then(k8s_int) {
        Some(n) if n >= 2 => {}
        other => p.push(format!("Deployment: replicas {other:?}, expected at least 2")),
    }
    let selector = labels(get(dep, &["spec", "selector", "matchLabels"]));
    let pod_labels = labels(get(dep, &["spec", "template", "metadata", "labels"]));
    if selector.is_empty() {
        p.push("Deployment: empty selector".into());
    }
    if s(dep, &["spec", "selector", "matchLabels", "app.kubernetes.io/name"]) != Some("cloudbroker") {
        p.push("Deployment: selector lacks app.kubernetes.io/name=cloudbroker".into());
    }
    for (k, v) in &selector {
        if pod_labels.get(k) != Some(v) {
            p.push(format!("Deployment: selector {k}={v} does not match the pod template labels {pod_labels:?}"));
        }
    }
    for (kind, path) in [("Service", &["spec", "selector"][..]), ("PodDisruptionBudget", &["spec", "selector", "matchLabels"][..])] {
        let found: Vec<&Value> = docs.iter().map(|(_, d)| d).filter(|d| s(d, &["kind"]) == Some(kind)).collect();
        if found.is_empty() {
            p.push(format!("no {kind}"));
        }
        for d in found {
            let sel = labels(get(d, path));
            if sel != selector {
                p.push(format!(
                    "{kind} {}: selector {sel:?} differs from the Deployment's {selector:?}",
                    s(d, &["metadata", "name"]).unwrap_or("?")
                ));
            }
            if kind == "PodDisruptionBudget" && get(d, &["spec", "minAvailable"]).and_then(k8s_int) != Some(1) {
                p.push("PodDisruptionBudget: minAvailable is not 1".into());
            }
        }
    }

    let pod = get(dep, &["spec", "template", "spec"]).cloned().unwrap_or(Value::Null);
    let containers = seq(&pod, &["containers"]);
    let inits = seq(&pod, &["initContainers"]);
    let all: Vec<&Value> = containers.iter().chain(inits.iter()).copied().collect();
    let volumes: BTreeMap<String, &Value> =
        seq(&pod, &["volumes"]).into_iter().filter_map(|v| Some((s(v, &["name"])?.to_string(), v))).collect();
    let Some(main) = containers.iter().find(|c| s(c, &["name"]) == Some("cloudbroker")).or(containers.first()).copied() else {
        p.push("Deployment: no container".into());
        return p;
    };
    let env: BTreeMap<String, &Value> = seq(main, &["env"]).into_iter().filter_map(|e| Some((s(e, &["name"])?.to_string(), e))).collect();
    let env_value = |n: &str| env.get(n).and_then(|e| s(e, &["value"])).map(String::from);

    // Probes on the container port.
    let ports: Vec<(Option<String>, i64)> = seq(main, &["ports"])
        .into_iter()
        .filter_map(|p| Some((s(p, &["name"]).map(String::from), get(p, &["containerPort"]).and_then(k8s_int)?)))
        .collect();
    if ports.is_empty() {
        p.push("container cloudbroker: no containerPort".into());
    }
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")] {
        let Some(http) = get(main, &[probe, "httpGet"]) else {
            p.push(format!("container cloudbroker: no {probe} with httpGet"));
            continue;
        };
        if s(http, &["path"]) != Some(path) {
            p.push(format!("{probe}: path {:?}, expected {path}", s(http, &["path"])));
        }
        let on_port = match get(http, &["port"]) {
            Some(Value::String(name)) => ports.iter().any(|(n, _)| n.as_deref() == Some(name)),
            Some(v) => k8s_int(v).is_some_and(|n| ports.iter().any(|(_, c)| *c == n)),
            None => false,
        };
        if !on_port {
            p.push(format!("{probe}: port {:?} is not a container port {ports:?}", get(http, &["port"])));
        }
    }
    if let Some(listen) = env_value("CLOUDBROKER_LISTEN") {
        let port = listen.rsplit(':').next().and_then(|x| x.parse::<i64>().ok());
        if !ports.iter().any(|(_, c)| Some(*c) == port) {
            p.push(format!("CLOUDBROKER_LISTEN={listen} is not on a container port {ports:?}"));
        }
        if !listen.starts_with("0.0.0.0:") && !listen.starts_with("[::]:") {
            p.push(format!("CLOUDBROKER_LISTEN={listen}: probes and the Service need all interfaces"));
        }
    } else {
        p.push("container cloudbroker: CLOUDBROKER_LISTEN not set (the default 127.0.0.1 is unreachable)".into());
    }

    // Grace period above the broker's shutdown deadline plus any preStop pause.
    let pre_stop: u64 = seq(main, &["lifecycle", "preStop", "exec", "command"])
        .iter()
        .filter_map(|v| v.as_str().and_then(|x| x.parse::<u64>().ok()))
        .sum::<u64>()
        + get(main, &["lifecycle", "preStop", "sleep", "seconds"]).and_then(k8s_int).unwrap_or(0) as u64;
    match get(&pod, &["terminationGracePeriodSeconds"]).and_then(k8s_int) {
        Some(g) if g as u64 > deadline + pre_stop => {}
        other => {
            p.push(format!("terminationGracePeriodSeconds {other:?} is not above the shutdown deadline {deadline}s + preStop {pre_stop}s"))
        }
    }

    // Security.
    if !truthy(get(&pod, &["securityContext", "runAsNonRoot"])) {
        p.push("pod securityContext: runAsNonRoot is not true".into());
    }
    if get(&pod, &["securityContext", "runAsUser"]).and_then(k8s_int) == Some(0) {
        p.push("pod securityContext: runAsUser 0".into());
    }
    for c in &all {
        let n = s(c, &["name"]).unwrap_or("?");
        let sc = get(c, &["securityContext"]);
        if sc.and_then(|x| x.get("allowPrivilegeEscalation")).and_then(Value::as_bool) != Some(false) {
            p.push(format!("container {n}: allowPrivilegeEscalation is not false"));
        }
        if !truthy(sc.and_then(|x| x.get("readOnlyRootFilesystem"))) {
            p.push(format!("container {n}: readOnlyRootFilesystem is not true"));
        }
        let drops: Vec<&str> =
            sc.map(|x| seq(x, &["capabilities", "drop"])).unwrap_or_default().iter().filter_map(|v| v.as_str()).collect();
        if !drops.contains(&"ALL") {
            p.push(format!("container {n}: capabilities do not drop ALL"));
        }
        if sc.and_then(|x| x.get("runAsUser")).and_then(k8s_int) == Some(0) {
            p.push(format!("container {n}: runAsUser 0"));
        }
        let seccomp = sc.and_then(|x| s(x, &["seccompProfile", "type"])).or(s(&pod, &["securityContext", "seccompProfile", "type"]));
        if seccomp != Some("RuntimeDefault") {
            p.push(format!("container {n}: seccompProfile is {seccomp:?}, not RuntimeDefault"));
        }
        match s(c, &["image"]) {
            Some(img)
                if img.rsplit('/').next().is_some_and(|last| last.contains(':') || last.contains('@')) && !img.ends_with(":latest") => {}
            other => p.push(format!("container {n}: image {other:?} has no pinned tag")),
        }
        for m in seq(c, &["volumeMounts"]) {
            let v = s(m, &["name"]).unwrap_or("?");
            if !volumes.contains_key(v) {
                p.push(format!("container {n}: mounts volume {v}, which is not defined"));
            }
        }
        for e in seq(c, &["env"]) {
            let name = s(e, &["name"]).unwrap_or("?");
            if name.starts_with("CLOUDBROKER_") && !recognized(name, s(e, &["value"]).unwrap_or("x")) {
                p.push(format!("container {n}: {name} is not a variable the broker reads"));
            }
        }
    }
    for (what, path) in
        [("requests.cpu", ["requests", "cpu"]), ("requests.memory", ["requests", "memory"]), ("limits.memory", ["limits", "memory"])]
    {
        if get(main, &["resources", path[0], path[1]]).is_none() {
            p.push(format!("container cloudbroker: no resources.{what}"));
        }
    }

    // The mount covering a path in a container: (mount, volume).
    let mount_of = |c: &Value, path: &str| -> Option<(Value, Value)> {
        seq(c, &["volumeMounts"])
            .into_iter()
            .filter(|m| s(m, &["mountPath"]).is_some_and(|mp| path == mp || path.starts_with(&format!("{}/", mp.trim_end_matches('/')))))
            .max_by_key(|m| s(m, &["mountPath"]).map_or(0, str::len))
            .map(|m| (m.clone(), volumes.get(s(m, &["name"]).unwrap_or_default()).map(|v| (*v).clone()).unwrap_or(Value::Null)))
    };

    // The data directory: a writable emptyDir (the root file system is read-only).
    match env_value("CLOUDBROKER_DATA_DIR").and_then(|d| mount_of(main, &d)) {
        Some((m, v)) if get(&v, &["emptyDir"]).is_some() && !truthy(get(&m, &["readOnly"])) => {}
        _ => p.push("CLOUDBROKER_DATA_DIR is not set to a writable emptyDir mount".into()),
    }

    // The master key: from a Secret (0400), read-only all the way to the broker.
    let secret_vol_ok = |v: &Value, p: &mut Vec<String>| -> bool {
        let Some(name) = s(v, &["secret", "secretName"]) else { return false };
        let mode = get(v, &["secret", "defaultMode"]).and_then(k8s_int);
        if mode != Some(0o400) {
            p.push(format!("master key volume (Secret {name}): defaultMode {mode:?}, expected 0400 (256)"));
        }
        true
    };
    match env_value("CLOUDBROKER_MASTER_KEY_FILE") {
        None => p.push("container cloudbroker: CLOUDBROKER_MASTER_KEY_FILE not set (each replica would create its own key)".into()),
        Some(key) => match mount_of(main, &key) {
            None => p.push(format!("CLOUDBROKER_MASTER_KEY_FILE={key} is on no volume mount")),
            Some((m, v)) => {
                if !truthy(get(&m, &["readOnly"])) {
                    p.push(format!("the mount holding the master key ({}) is not readOnly", s(&m, &["mountPath"]).unwrap_or("?")));
                }
                let vname = s(&v, &["name"]).unwrap_or("?").to_string();
                if !secret_vol_ok(&v, &mut p) {
                    if get(&v, &["emptyDir"]).is_none() {
                        p.push(format!("master key volume {vname}: neither a Secret nor an emptyDir filled from one"));
                    } else {
                        if s(&v, &["emptyDir", "medium"]) != Some("Memory") {
                            p.push(format!("master key volume {vname}: the copy is not memory-backed"));
                        }
                        // An init container fills it from a Secret it mounts read-only.
                        let filler = inits.iter().find(|c| {
                            let text = serde_yaml::to_string(&(get(c, &["command"]), get(c, &["args"]))).unwrap_or_default();
                            let dest = mount_of(c, &key).and_then(|(m, _)| s(&m, &["name"]).map(String::from));
                            dest.as_deref() == Some(vname.as_str()) && text.contains(&key)
                        });
                        match filler {
                            None => p.push(format!("no init container writes {key} into volume {vname}")),
                            Some(c) => {
                                let sources: Vec<(Value, Value)> = seq(c, &["volumeMounts"])
                                    .into_iter()
                                    .filter_map(|m| Some((m.clone(), (*volumes.get(s(m, &["name"])?)?).clone())))
                                    .filter(|(_, v)| get(v, &["secret"]).is_some())
                                    .collect();
                                if sources.is_empty() {
                                    p.push(format!(
                                        "init container {}: copies the key from no Secret volume",
                                        s(c, &["name"]).unwrap_or("?")
                                    ));
                                }
                                for (m, v) in sources {
                                    secret_vol_ok(&v, &mut p);
                                    if !truthy(get(&m, &["readOnly"])) {
                                        p.push(format!("master key Secret volume {} is mounted writable", s(&v, &["name"]).unwrap_or("?")));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    }

    // Every Secret and ConfigMap referenced is defined (with the keys used).
    let mut refs: Vec<(&str, String, Option<String>)> = Vec::new();
    for v in volumes.values() {
        let items = |src: &Value| -> Vec<String> { seq(src, &["items"]).iter().filter_map(|i| s(i, &["key"]).map(String::from)).collect() };
        if let Some(src) = get(v, &["secret"]) {
            let name = s(src, &["secretName"]).unwrap_or_default().to_string();
            refs.push(("Secret", name.clone(), None));
            refs.extend(items(src).into_iter().map(|k| ("Secret", name.clone(), Some(k))));
        }
        if let Some(src) = get(v, &["configMap"]) {
            let name = s(src, &["name"]).unwrap_or_default().to_string();
            refs.push(("ConfigMap", name.clone(), None));
            refs.extend(items(src).into_iter().map(|k| ("ConfigMap", name.clone(), Some(k))));
        }
        for src in seq(v, &["projected", "sources"]) {
            for (kind, field) in [("Secret", "secret"), ("ConfigMap", "configMap")] {
                if let Some(x) = get(src, &[field]) {
                    refs.push((kind, s(x, &["name"]).unwrap_or_default().to_string(), None));
                }
            }
        }
    }
    for c in &all {
        for e in seq(c, &["env"]) {
            for (kind, field) in [("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")] {
                if let Some(r) = get(e, &["valueFrom", field]) {
                    refs.push((kind, s(r, &["name"]).unwrap_or_default().to_string(), s(r, &["key"]).map(String::from)));
                }
            }
        }
        for e in seq(c, &["envFrom"]) {
            for (kind, field) in [("Secret", "secretRef"), ("ConfigMap", "configMapRef")] {
                if let Some(r) = get(e, &[field]) {
                    refs.push((kind, s(r, &["name"]).unwrap_or_default().to_string(), None));
                }
            }
        }
    }
    if !refs.iter().any(|(k, _, _)| *k == "Secret") || !refs.iter().any(|(k, _, _)| *k == "ConfigMap") {
        p.push("the Deployment references no Secret or no ConfigMap".into());
    }
    for (kind, name, key) in refs {
        let defined = if kind == "Secret" { &secrets } else { &configmaps };
        match (defined.get(&name), key) {
            (None, _) => p.push(format!("{kind} {name:?} is referenced but not defined in {K8S}")),
            (Some(keys), Some(k)) if !keys.contains(&k) => p.push(format!("{kind} {name}: key {k:?} is referenced but not defined")),
            _ => {}
        }
    }
    p
}

fn kubernetes() -> (Vec<(String, Value)>, Vec<String>) {
    (load_manifests(), yaml_files())
}

#[test]
fn kubernetes_manifests_are_consistent() {
    let (docs, files) = kubernetes();
    assert!(docs.len() >= 7, "{} documents", docs.len());
    for f in [
        "deployment.yaml",
        "service.yaml",
        "configmap-connectors.yaml",
        "secret-example.yaml",
        "poddisruptionbudget.yaml",
        "kustomization.yaml",
    ] {
        assert!(files.contains(&f.to_string()), "{K8S}/{f} missing");
    }
    let problems = check_kubernetes(&docs, &files);
    assert!(problems.is_empty(), "problems in {K8S}:\n{}", problems.join("\n"));
}

fn find_mut<'a>(docs: &'a mut [(String, Value)], kind: &str) -> &'a mut Value {
    &mut docs.iter_mut().find(|(_, d)| s(d, &["kind"]) == Some(kind)).unwrap().1
}

fn pod_mut(docs: &mut [(String, Value)]) -> &mut Value {
    find_mut(docs, "Deployment").get_mut("spec").unwrap().get_mut("template").unwrap().get_mut("spec").unwrap()
}

fn volume_mut<'a>(docs: &'a mut [(String, Value)], name: &str) -> &'a mut Value {
    pod_mut(docs)["volumes"].as_sequence_mut().unwrap().iter_mut().find(|v| s(v, &["name"]) == Some(name)).unwrap()
}

fn main_mut(docs: &mut [(String, Value)]) -> &mut Value {
    pod_mut(docs)["containers"].as_sequence_mut().unwrap().iter_mut().find(|c| s(c, &["name"]) == Some("cloudbroker")).unwrap()
}

/// The volume the master key Secret is mounted from.
fn key_secret_volume(docs: &[(String, Value)]) -> String {
    let pod =
        get(&docs.iter().find(|(_, d)| s(d, &["kind"]) == Some("Deployment")).unwrap().1, &["spec", "template", "spec"]).unwrap().clone();
    seq(&pod, &["volumes"])
        .into_iter()
        .find(|v| s(v, &["secret", "secretName"]).is_some_and(|n| n.contains("master-key")))
        .and_then(|v| s(v, &["name"]).map(String::from))
        .unwrap()
}

#[test]
fn kubernetes_checker_rejects_broken_copies() {
    type Break = Box<dyn Fn(&mut Vec<(String, Value)>, &mut Vec<String>)>;
    let cases: Vec<(&str, Break, &str)> = vec![
        (
            "master key volume names a Secret that is not defined",
            Box::new(|d, _| {
                let v = key_secret_volume(d);
                volume_mut(d, &v)["secret"]["secretName"] = Value::from("cloudbroker-master-key-typo");
            }),
            "Secret \"cloudbroker-master-key-typo\" is referenced but not defined",
        ),
        (
            "the database Secret document is removed",
            Box::new(|d, _| d.retain(|(_, x)| s(x, &["metadata", "name"]) != Some("cloudbroker-database"))),
            "Secret \"cloudbroker-database\" is referenced but not defined",
        ),
        ("the connectors ConfigMap is removed", Box::new(|d, _| d.retain(|(_, x)| s(x, &["kind"]) != Some("ConfigMap"))), "ConfigMap"),
        (
            "a secretKeyRef names a missing key",
            Box::new(|d, _| {
                for e in main_mut(d)["env"].as_sequence_mut().unwrap() {
                    if let Some(r) = e.get_mut("valueFrom").and_then(|v| v.get_mut("secretKeyRef")) {
                        r["key"] = Value::from("no-such-key");
                    }
                }
            }),
            "key \"no-such-key\" is referenced but not defined",
        ),
        ("one replica", Box::new(|d, _| find_mut(d, "Deployment")["spec"]["replicas"] = Value::from(1)), "replicas"),
        (
            "pod labels no longer match the selector",
            Box::new(|d, _| {
                find_mut(d, "Deployment")["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] = Value::from("other")
            }),
            "does not match the pod template labels",
        ),
        (
            "the Service selects other pods",
            Box::new(|d, _| find_mut(d, "Service")["spec"]["selector"]["app.kubernetes.io/name"] = Value::from("other")),
            "Service cloudbroker: selector",
        ),
        (
            "the PDB selects other pods",
            Box::new(|d, _| find_mut(d, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] = Value::Mapping(Mapping::new())),
            "PodDisruptionBudget cloudbroker: selector",
        ),
        ("liveness probe on /", Box::new(|d, _| main_mut(d)["livenessProbe"]["httpGet"]["path"] = Value::from("/")), "livenessProbe: path"),
        (
            "readiness probe on /healthz",
            Box::new(|d, _| main_mut(d)["readinessProbe"]["httpGet"]["path"] = Value::from("/healthz")),
            "readinessProbe: path",
        ),
        (
            "readiness probe on another port",
            Box::new(|d, _| main_mut(d)["readinessProbe"]["httpGet"]["port"] = Value::from(9090)),
            "readinessProbe: port",
        ),
        (
            "master key Secret mode 0644",
            Box::new(|d, _| {
                let v = key_secret_volume(d);
                volume_mut(d, &v)["secret"]["defaultMode"] = Value::from("0644");
            }),
            "defaultMode Some(420)",
        ),
        (
            "master key mounted writable in the broker",
            Box::new(|d, _| {
                for m in main_mut(d)["volumeMounts"].as_sequence_mut().unwrap() {
                    if s(m, &["mountPath"]).is_some_and(|p| p.contains("key")) {
                        m.as_mapping_mut().unwrap().remove("readOnly");
                    }
                }
            }),
            "is not readOnly",
        ),
        (
            "no master key file variable",
            Box::new(|d, _| {
                main_mut(d)["env"].as_sequence_mut().unwrap().retain(|e| s(e, &["name"]) != Some("CLOUDBROKER_MASTER_KEY_FILE"))
            }),
            "CLOUDBROKER_MASTER_KEY_FILE not set",
        ),
        (
            "a misspelt broker variable",
            Box::new(|d, _| {
                let mut e = Mapping::new();
                e.insert("name".into(), "CLOUDBROKER_DATABSE_URL".into());
                e.insert("value".into(), "postgres://x@y/z".into());
                main_mut(d)["env"].as_sequence_mut().unwrap().push(Value::Mapping(e));
            }),
            "CLOUDBROKER_DATABSE_URL is not a variable the broker reads",
        ),
        (
            "grace period equal to the shutdown deadline",
            Box::new(|d, _| pod_mut(d)["terminationGracePeriodSeconds"] = Value::from(30)),
            "terminationGracePeriodSeconds",
        ),
        (
            "privilege escalation allowed",
            Box::new(|d, _| main_mut(d)["securityContext"]["allowPrivilegeEscalation"] = Value::from(true)),
            "allowPrivilegeEscalation",
        ),
        ("image :latest", Box::new(|d, _| main_mut(d)["image"] = Value::from("cloudbroker:latest")), "has no pinned tag"),
        (
            "a document without a name",
            Box::new(|d, _| find_mut(d, "Service")["metadata"] = Value::Mapping(Mapping::new())),
            "no metadata.name",
        ),
        ("the kustomization misses a file", Box::new(|_, f| f.push("extra.yaml".into())), "does not list extra.yaml"),
        (
            "the kustomization lists a missing file",
            Box::new(|d, _| {
                find_mut(d, "Kustomization")["resources"].as_sequence_mut().unwrap().push(Value::from("gone.yaml"));
            }),
            "lists gone.yaml",
        ),
    ];
    let (docs, files) = kubernetes();
    assert!(check_kubernetes(&docs, &files).is_empty());
    for (what, breaker, expected) in &cases {
        let (mut d, mut f) = (docs.clone(), files.clone());
        breaker(&mut d, &mut f);
        let problems = check_kubernetes(&d, &f);
        assert!(problems.iter().any(|p| p.contains(expected)), "{what}: expected a problem containing {expected:?}, got {problems:?}");
    }
    println!("the Kubernetes checker rejected {} broken copies", cases.len());
}

/// The Deployment's settings, run through the real binary: its plain
/// variables, the database URL from the example Secret, and the connector
/// files from the ConfigMap.
#[test]
fn kubernetes_settings_are_accepted_by_the_broker() {
    let (docs, _) = kubernetes();
    let dep = &docs.iter().find(|(_, d)| s(d, &["kind"]) == Some("Deployment")).unwrap().1;
    let cm = &docs.iter().find(|(_, d)| s(d, &["kind"]) == Some("ConfigMap")).unwrap().1;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("connectors.d");
    std::fs::create_dir(&conf).unwrap();
    for (k, v) in get(cm, &["data"]).unwrap().as_mapping().unwrap() {
        std::fs::write(conf.join(k.as_str().unwrap()), v.as_str().unwrap()).unwrap();
    }
    let pw = dir.path().join("password");
    std::fs::write(&pw, "example\n").unwrap();
    let main = seq(dep, &["spec", "template", "spec", "containers"]).into_iter().find(|c| s(c, &["name"]) == Some("cloudbroker")).unwrap();
    let mut cmd = bin();
    cmd.args(["connectors", "check"]);
    for e in seq(main, &["env"]) {
        let name = s(e, &["name"]).unwrap();
        let value = match (name, s(e, &["value"])) {
            ("CLOUDBROKER_CONNECTORS_DIR", _) => conf.to_str().unwrap().to_string(),
            ("CLOUDBROKER_ADMIN_PASSWORD_FILE", _) => pw.to_str().unwrap().to_string(),
            ("CLOUDBROKER_DATA_DIR", _) => dir.path().join("data").to_str().unwrap().to_string(),
            (_, Some(v)) => v.to_string(),
            (_, None) => {
                let r = get(e, &["valueFrom", "secretKeyRef"]).unwrap();
                let secret = &docs
                    .iter()
                    .find(|(_, d)| s(d, &["kind"]) == Some("Secret") && s(d, &["metadata", "name"]) == s(r, &["name"]))
                    .unwrap()
                    .1;
                s(secret, &["stringData", s(r, &["key"]).unwrap()]).unwrap().to_string()
            }
        };
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok     sandbox:sandbox"), "{stdout}");
    assert!(stdout.contains("no errors"), "{stdout}");
}

// ---------------------------------------------------------------- systemd

const UNIT: &str = "deploy/systemd/cloudbroker.service";

/// section -> key -> values (a key may repeat).
type Ini = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(text: &str) -> Ini {
    let mut ini = Ini::new();
    let mut section = String::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        let line = format!("{pending}{line}");
        pending.clear();
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].to_string();
            ini.entry(section.clone()).or_default();
        } else if let Some((k, v)) = line.split_once('=') {
            ini.entry(section.clone()).or_default().entry(k.trim().to_string()).or_default().push(v.trim().to_string());
        }
    }
    ini
}

fn seconds(v: &str) -> Option<u64> {
    let v = v.trim();
    if let Some(m) = v.strip_suffix("min") {
        return m.trim().parse::<u64>().ok().map(|m| m * 60);
    }
    v.strip_suffix('s').unwrap_or(v).trim().parse().ok()
}

fn check_unit(text: &str) -> Vec<String> {
    let ini = parse_unit(text);
    let mut p = Vec::new();
    let Some(svc) = ini.get("Service") else { return vec!["no [Service] section".into()] };
    let last = |k: &str| svc.get(k).and_then(|v| v.last()).map(String::as_str);
    let yes = |k: &str| matches!(last(k), Some("true" | "yes" | "1" | "on"));
    for k in [
        "NoNewPrivileges",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectHome",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectControlGroups",
        "RestrictNamespaces",
        "LockPersonality",
        "MemoryDenyWriteExecute",
    ] {
        if !yes(k) {
            p.push(format!("{k} is not true ({:?})", last(k)));
        }
    }
    for (k, v) in [
        ("ProtectSystem", "strict"),
        ("User", "cloudbroker"),
        ("Group", "cloudbroker"),
        ("UMask", "0077"),
        ("StateDirectory", "cloudbroker"),
        ("ConfigurationDirectory", "cloudbroker"),
        ("Restart", "on-failure"),
        ("EnvironmentFile", "-/etc/cloudbroker/cloudbroker.env"),
    ] {
        if last(k) != Some(v) {
            p.push(format!("{k}={:?}, expected {v}", last(k)));
        }
    }
    if yes("DynamicUser") {
        p.push("DynamicUser is on (a dedicated cloudbroker user is wanted)".into());
    }
    let families: BTreeSet<&str> = last("RestrictAddressFamilies").unwrap_or_default().split_whitespace().collect();
    if families != BTreeSet::from(["AF_INET", "AF_INET6", "AF_UNIX"]) {
        p.push(format!("RestrictAddressFamilies {families:?}"));
    }
    let filters = svc.get("SystemCallFilter").cloned().unwrap_or_default();
    if !filters.iter().any(|f| !f.starts_with('~') && f.split_whitespace().any(|x| x == "@system-service")) {
        p.push(format!("SystemCallFilter does not allow-list @system-service: {filters:?}"));
    }
    match svc.get("CapabilityBoundingSet") {
        Some(v) if v.last().is_some_and(String::is_empty) => {}
        other => p.push(format!("CapabilityBoundingSet is not empty: {other:?}")),
    }
    let reload = last("ExecReload").unwrap_or_default();
    let words: Vec<&str> = reload.split_whitespace().collect();
    if !(words.first().is_some_and(|w| w.ends_with("/kill"))
        && (words.contains(&"-HUP") || words.windows(2).any(|w| w == ["-s", "HUP"]))
        && words.contains(&"$MAINPID"))
    {
        p.push(format!("ExecReload does not send SIGHUP to $MAINPID: {reload:?}"));
    }
    let start = last("ExecStart").unwrap_or_default();
    let args: Vec<&str> = start.split_whitespace().collect();
    if args.first() != Some(&"/usr/local/bin/cloudbroker")
        || !args.contains(&"serve")
        || !start.contains("--config /etc/cloudbroker/cloudbroker.toml")
    {
        p.push(format!("ExecStart is not `/usr/local/bin/cloudbroker serve --config /etc/cloudbroker/cloudbroker.toml`: {start:?}"));
    }
    let deadline = shutdown_deadline_secs();
    match last("TimeoutStopSec").and_then(seconds) {
        Some(t) if t > deadline && t <= deadline + 60 => {}
        other => p.push(format!("TimeoutStopSec {other:?} is not a little above the shutdown deadline {deadline}s")),
    }
    if ini.get("Install").and_then(|i| i.get("WantedBy")).is_none() {
        p.push("no [Install] WantedBy".into());
    }
    p
}

#[test]
fn systemd_unit_is_hardened_and_reloads_with_sighup() {
    let text = read(UNIT);
    let problems = check_unit(&text);
    assert!(problems.is_empty(), "{UNIT}:\n{}", problems.join("\n"));
    let broken = [
        ("ProtectSystem=strict", "ProtectSystem=full", "ProtectSystem"),
        ("ExecReload=/bin/kill -HUP $MAINPID", "ExecReload=/bin/kill $MAINPID", "ExecReload"),
        ("User=cloudbroker", "DynamicUser=yes", "DynamicUser"),
        ("CapabilityBoundingSet=", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet"),
        (
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
            "RestrictAddressFamilies",
        ),
        ("TimeoutStopSec=45", "TimeoutStopSec=10", "TimeoutStopSec"),
        ("MemoryDenyWriteExecute=true", "MemoryDenyWriteExecute=false", "MemoryDenyWriteExecute"),
        ("UMask=0077", "UMask=0022", "UMask"),
    ];
    for (from, to, expected) in broken {
        assert!(text.contains(&format!("\n{from}\n")), "{UNIT} has no line {from:?}");
        let problems = check_unit(&text.replacen(&format!("\n{from}\n"), &format!("\n{to}\n"), 1));
        assert!(problems.iter().any(|p| p.contains(expected)), "{to}: {problems:?}");
    }
}

/// `systemd-analyze verify` output that means trouble (it exits 0 on unknown keys).
fn verify_complaints(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| ["Unknown", "unknown", "Failed", "Invalid", "invalid", "ignoring", "not executable"].iter().any(|w| l.contains(w)))
        .filter(|l| !l.contains("couldn't retrieve kernel system call list"))
        .map(String::from)
        .collect()
}

fn systemd_verify(unit_text: &str) -> (bool, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloudbroker.service");
    std::fs::write(&path, unit_text).unwrap();
    let out = std::process::Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), verify_complaints(&stderr))
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    if std::process::Command::new("systemd-analyze").arg("--version").output().is_err() {
        println!("NOTICE: systemd-analyze is not installed (Debian package `systemd`): `systemd-analyze verify` of {UNIT} was SKIPPED");
        eprintln!("NOTICE: systemd-analyze is not installed (Debian package `systemd`): `systemd-analyze verify` of {UNIT} was SKIPPED");
        return;
    }
    // The real binary is not installed here: verify a copy starting /bin/true with the same arguments.
    let text = read(UNIT);
    assert!(text.contains("ExecStart=/usr/local/bin/cloudbroker "));
    let unit = text.replace("ExecStart=/usr/local/bin/cloudbroker ", "ExecStart=/bin/true ");
    let (ok, complaints) = systemd_verify(&unit);
    assert!(ok && complaints.is_empty(), "systemd-analyze verify: ok={ok} {complaints:?}");
    // The check can fail: an unknown key, and a missing binary.
    let (ok, complaints) = systemd_verify(&unit.replace("[Service]\n", "[Service]\nProtectEverything=true\n"));
    assert!(!ok || !complaints.is_empty(), "an unknown key was not reported");
    let (ok, complaints) = systemd_verify(&text.replace("/usr/local/bin/cloudbroker ", "/nonexistent/cloudbroker "));
    assert!(!ok || !complaints.is_empty(), "a missing binary was not reported");
    println!("systemd-analyze verify accepted {UNIT}");
}

/// Uncomments `# key = value` lines of the TOML example.
fn toml_all_keys(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')) =>
            {
                rest.to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `cloudbroker <ExecStart's flags> connectors check` with the given config file.
fn check_with_unit_flags(config: &Path, envs: &[(String, String)]) -> std::process::Output {
    let unit = parse_unit(&read(UNIT));
    let start = unit["Service"]["ExecStart"].last().unwrap().clone();
    let mut cmd = bin();
    for a in start.split_whitespace().skip(1) {
        match a {
            "serve" => cmd.args(["connectors", "check"]),
            "/etc/cloudbroker/cloudbroker.toml" => cmd.arg(config),
            other => cmd.arg(other),
        };
    }
    cmd.arg("--connectors-dir").arg(repo().join("connectors.d"));
    cmd.envs(envs.iter().map(|(k, v)| (k, v)));
    cmd.output().unwrap()
}

#[test]
fn systemd_examples_use_only_settings_the_broker_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let example = read("deploy/systemd/cloudbroker.toml.example");
    let unit = parse_unit(&read(UNIT));
    let state = format!("/var/lib/{}", unit["Service"]["StateDirectory"][0]);
    let conf = format!("/etc/{}", unit["Service"]["ConfigurationDirectory"][0]);
    assert!(example.contains(&format!("data_dir = \"{state}\"")), "data_dir is not the unit's StateDirectory {state}");
    assert!(example.contains(&format!("connectors_dir = \"{conf}/connectors.d\"")), "connectors_dir is not under {conf}");
    let run = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        check_with_unit_flags(&path, &[])
    };
    // As shipped, then with every commented key set: the real binary accepts both.
    let all = toml_all_keys(&example);
    assert!(
        all.lines().filter(|l| l.contains(" = ")).count() > example.lines().filter(|l| !l.starts_with('#') && l.contains(" = ")).count()
    );
    for (name, text) in [("shipped.toml", example.clone()), ("all.toml", all.clone())] {
        let out = run(name, &text);
        assert!(out.status.success(), "{name}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("ok     sandbox:sandbox"));
    }
    // The check can fail: an unknown key is refused.
    let out = run("typo.toml", &format!("{all}\nlisen = \"127.0.0.1:1\"\n"));
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unknown field"), "{out:?}");

    // The environment example: every variable of the README's table, only
    // variables the broker reads, and values it accepts.
    let env_text = read("deploy/systemd/cloudbroker.env.example");
    let mut env = Vec::new();
    for l in env_text.lines() {
        let l = l.trim_start_matches('#');
        if let Some((k, v)) = l.split_once('=') {
            if k.starts_with("CLOUDBROKER_") && k.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                assert!(recognized(k, v), "cloudbroker.env.example: the broker does not read {k}");
                env.push((k.to_string(), v.to_string()));
            }
        }
    }
    let names: BTreeSet<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    let table = readme_variables();
    assert!(table.len() >= 15, "{table:?}");
    for v in &table {
        assert!(recognized(v, "1"), "README lists {v}, which the broker does not read");
        assert!(names.contains(v.as_str()), "cloudbroker.env.example lacks {v}");
    }
    assert!(!recognized("CLOUDBROKER_DATABSE_URL", "x"), "recognized() accepts anything");
    let pw = dir.path().join("admin-password");
    std::fs::write(&pw, "example\n").unwrap();
    let env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k != "CLOUDBROKER_CONNECTORS_DIR")
        .map(|(k, v)| match k.as_str() {
            "CLOUDBROKER_ADMIN_PASSWORD_FILE" | "CLOUDBROKER_METRICS_TOKEN_FILE" => (k, pw.to_str().unwrap().to_string()),
            "CLOUDBROKER_CONFIG" => (k, dir.path().join("all.toml").to_str().unwrap().to_string()),
            _ => (k, v),
        })
        .collect();
    let out = check_with_unit_flags(&dir.path().join("all.toml"), &env);
    assert!(out.status.success(), "every variable of the env example set: {}", String::from_utf8_lossy(&out.stderr));
}

/// The CLOUDBROKER_* variables of the README's configuration table
/// (`CLOUDBROKER_SESSION_IDLE_SECS` / `_ABSOLUTE_SECS` share a prefix).
fn readme_variables() -> BTreeSet<String> {
    let readme = read("README.md");
    let section = readme.split("\n## Configuration").nth(1).unwrap().split("\n## ").next().unwrap();
    let mut out = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        let mut previous: Option<String> = None;
        for tok in row.split('`').skip(1).step_by(2) {
            if tok.starts_with("CLOUDBROKER_") {
                out.insert(tok.to_string());
                previous = Some(tok.to_string());
            } else if tok.starts_with('_') && tok.len() > 1 {
                let prev = previous.clone().unwrap();
                let n = tok.matches('_').count();
                let parts: Vec<&str> = prev.split('_').collect();
                out.insert(format!("{}{tok}", parts[..parts.len() - n].join("_")));
            }
        }
    }
    out
}

// ---------------------------------------------------------------- Docker

const DOCKERFILE: &str = "deploy/docker/Dockerfile";

/// (INSTRUCTION, arguments), continuation lines joined, comments dropped.
fn parse_dockerfile(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || (line.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(part) = line.strip_suffix('\\') {
            cur.push_str(part);
            cur.push(' ');
            continue;
        }
        cur.push_str(line);
        let (i, rest) = cur.trim().split_once(char::is_whitespace).unwrap_or((cur.trim(), ""));
        out.push((i.to_ascii_uppercase(), rest.trim().to_string()));
        cur.clear();
    }
    out
}

fn check_dockerfile(text: &str, deployment_uid: Option<i64>) -> Vec<String> {
    let mut p = Vec::new();
    let ins = parse_dockerfile(text);
    if text.to_ascii_lowercase().contains(":latest") {
        p.push("uses a :latest tag".into());
    }
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (i, a) in &ins {
        if i == "FROM" {
            let words: Vec<&str> = a.split_whitespace().collect();
            let mut image = words.first().copied().unwrap_or_default().to_string();
            for (k, v) in &args {
                image = image.replace(&format!("${{{k}}}"), v).replace(&format!("${k}"), v);
            }
            let last = image.rsplit('/').next().unwrap_or_default();
            if !(last.contains(':') || last.contains('@')) || image.ends_with(":latest") || image.contains('$') {
                p.push(format!("FROM {image}: no pinned tag"));
            }
            let name = match words.as_slice() {
                [_, as_, n] if as_.eq_ignore_ascii_case("as") => n.to_string(),
                _ => stages.len().to_string(),
            };
            stages.push((name, Vec::new()));
        } else if let Some((_, st)) = stages.last_mut() {
            st.push((i.clone(), a.clone()));
        } else if i == "ARG" {
            if let Some((k, v)) = a.split_once('=') {
                args.insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
    }
    if stages.len() < 2 {
        p.push(format!("not multi-stage: {} FROM", stages.len()));
        return p;
    }
    let names: Vec<String> = stages.iter().map(|(n, _)| n.clone()).collect();
    for (idx, (name, st)) in stages.iter().enumerate() {
        let mut pipefail = false;
        let mut built_deps = false;
        let builds = st.iter().any(|(i, a)| i == "RUN" && a.contains("cargo build"));
        for (i, a) in st {
            match i.as_str() {
                "SHELL" => pipefail = a.contains("pipefail"),
                "WORKDIR" if !a.starts_with('/') => p.push(format!("stage {name}: WORKDIR {a} is not absolute")),
                "COPY" => {
                    if let Some(from) = a.split_whitespace().find_map(|w| w.strip_prefix("--from=")) {
                        if !names[..idx].contains(&from.to_string()) {
                            p.push(format!("stage {name}: COPY --from={from}, no earlier stage of that name"));
                        }
                    }
                    if a.split_whitespace().collect::<Vec<_>>() == [".", "."] && builds && !built_deps {
                        p.push(format!("stage {name}: no dependency-caching build before COPY . ."));
                    }
                }
                "RUN" => {
                    if a.replace("||", "").contains('|') && !pipefail {
                        p.push(format!("stage {name}: RUN with a pipe but no SHELL with pipefail: {a}"));
                    }
                    if a.contains("apt-get install") {
                        if !a.contains("--no-install-recommends") {
                            p.push(format!("stage {name}: apt-get install without --no-install-recommends"));
                        }
                        if !a.contains("rm -rf /var/lib/apt/lists") {
                            p.push(format!("stage {name}: apt lists not cleaned in the same RUN"));
                        }
                    }
                    if a.contains("cargo build") {
                        built_deps = true;
                    }
                }
                _ => {}
            }
        }
    }
    if !ins.iter().any(|(i, a)| i == "RUN" && a.contains("cargo build --release -p cloudbroker --locked")) {
        p.push("no `cargo build --release -p cloudbroker --locked`".into());
    }
    let (_, last) = stages.last().unwrap();
    let find = |i: &str| last.iter().filter(|(x, _)| x == i).map(|(_, a)| a.as_str()).next_back();
    match find("USER") {
        None => p.push("final stage: no USER (runs as root)".into()),
        Some(u) => {
            let user = u.split(':').next().unwrap_or_default();
            if user == "root" || user == "0" {
                p.push(format!("final stage: USER {u} is root"));
            } else if let (Ok(uid), Some(want)) = (user.parse::<i64>(), deployment_uid) {
                if uid != want {
                    p.push(format!("final stage: USER {uid} differs from the Deployment's runAsUser {want}"));
                }
            } else if user.parse::<i64>().is_err() {
                p.push(format!("final stage: USER {u} is not numeric (runAsNonRoot cannot check it)"));
            }
        }
    }
    match find("HEALTHCHECK") {
        Some(h) if h.contains("/healthz") && !h.trim().eq_ignore_ascii_case("none") => {}
        other => p.push(format!("final stage: HEALTHCHECK {other:?} does not probe /healthz")),
    }
    if find("STOPSIGNAL") != Some("SIGTERM") {
        p.push("final stage: STOPSIGNAL is not SIGTERM".into());
    }
    if !last.iter().any(|(i, a)| i == "EXPOSE" && a.split_whitespace().any(|x| x == "8080" || x == "8080/tcp")) {
        p.push("final stage: no EXPOSE 8080".into());
    }
    if !last.iter().any(|(i, a)| i == "VOLUME" && a.contains("/data")) {
        p.push("final stage: no /data VOLUME".into());
    }
    let env = dockerfile_env(last);
    for (k, v) in [("CLOUDBROKER_DATA_DIR", "/data"), ("CLOUDBROKER_LISTEN", "0.0.0.0:8080")] {
        if env.get(k).map(String::as_str) != Some(v) {
            p.push(format!("final stage: ENV {k}={:?}, expected {v}", env.get(k)));
        }
    }
    for i in ["ENTRYPOINT", "CMD"] {
        match find(i) {
            Some(a) if serde_json::from_str::<Vec<String>>(a).is_ok() => {}
            other => p.push(format!("final stage: {i} {other:?} is not in exec form")),
        }
    }
    p
}

/// The ENV settings of a stage (`ENV K=V K2=V2` form).
fn dockerfile_env(stage: &[(String, String)]) -> BTreeMap<String, String> {
    stage
        .iter()
        .filter(|(i, _)| i == "ENV")
        .flat_map(|(_, a)| {
            a.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

fn deployment_uid() -> Option<i64> {
    let (docs, _) = kubernetes();
    let dep = &docs.iter().find(|(_, d)| s(d, &["kind"]) == Some("Deployment"))?.1;
    get(dep, &["spec", "template", "spec", "securityContext", "runAsUser"]).and_then(k8s_int)
}

#[test]
fn dockerfile_is_multistage_nonroot_and_healthchecked() {
    let text = read(DOCKERFILE);
    let uid = deployment_uid();
    assert!(uid.is_some());
    let problems = check_dockerfile(&text, uid);
    assert!(problems.is_empty(), "{DOCKERFILE}:\n{}", problems.join("\n"));
    assert!(parse_dockerfile(&text).iter().filter(|(i, _)| i == "FROM").count() >= 2);
    let broken = [
        ("USER 10001:10001", "USER root", "is root"),
        ("USER 10001:10001\n", "\n", "no USER"),
        ("http://127.0.0.1:8080/healthz", "http://127.0.0.1:8080/", "HEALTHCHECK"),
        ("FROM debian:bookworm-slim AS runtime", "FROM debian:latest AS runtime", "latest"),
        ("--no-install-recommends ", "", "--no-install-recommends"),
        (" \\\n && rm -rf /var/lib/apt/lists/*", "", "apt lists"),
        ("ENTRYPOINT [\"/usr/local/bin/cloudbroker\"]", "ENTRYPOINT /usr/local/bin/cloudbroker", "exec form"),
        ("STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL", "STOPSIGNAL"),
        ("CLOUDBROKER_LISTEN=0.0.0.0:8080", "CLOUDBROKER_LISTEN=127.0.0.1:8080", "CLOUDBROKER_LISTEN"),
        ("RUN cargo build --release -p cloudbroker --locked\n", "", "dependency-caching"),
        ("COPY --from=builder ", "COPY --from=build ", "--from=build"),
        ("WORKDIR /data", "WORKDIR data", "not absolute"),
    ];
    for (from, to, expected) in broken {
        assert!(text.contains(from), "{DOCKERFILE} has no {from:?}");
        let problems = check_dockerfile(&text.replacen(from, to, 1), uid);
        assert!(problems.iter().any(|p| p.contains(expected)), "{from:?} -> {to:?}: {problems:?}");
    }
    // A single-stage file is refused, and a pipe without pipefail.
    let single: String = text.split("FROM debian:bookworm-slim").nth(1).map(|rest| format!("FROM debian:bookworm-slim{rest}")).unwrap();
    assert!(check_dockerfile(&single, uid).iter().any(|p| p.contains("not multi-stage")));
    let piped =
        text.replacen("SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n", "", 3).replacen("RUN mkdir", "RUN echo x | cat && mkdir", 1);
    assert!(check_dockerfile(&piped, uid).iter().any(|p| p.contains("pipefail")));
}

#[test]
fn dockerfile_settings_and_context_work() {
    let text = read(DOCKERFILE);
    let ins = parse_dockerfile(&text);
    let last_from = ins.iter().rposition(|(i, _)| i == "FROM").unwrap();
    let env = dockerfile_env(&ins[last_from..]);
    assert!(env.len() >= 2);
    // The image's variables, as the real binary reads them.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    for (k, v) in &env {
        assert!(recognized(k, v), "Dockerfile ENV {k}: not a variable the broker reads");
        let v = match k.as_str() {
            "CLOUDBROKER_DATA_DIR" => dir.path().to_str().unwrap().to_string(),
            "CLOUDBROKER_CONNECTORS_DIR" => repo().join("connectors.d").to_str().unwrap().to_string(),
            _ => v.clone(),
        };
        cmd.env(k, v);
    }
    let out = cmd.args(["connectors", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // COPY sources of the build context exist and are not ignored.
    let ignore = read(".dockerignore");
    let ignored: BTreeSet<&str> = ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    for must in [".git", "target", ".venv", "data"] {
        assert!(ignored.contains(must), ".dockerignore does not exclude {must}");
    }
    // Everything the build reads: the manifests and sources, plus files the crates embed.
    for needed in ["Cargo.toml", "Cargo.lock", "crates", "connectors.d", "migrations", "web", "docs"] {
        assert!(repo().join(needed).exists(), "{needed} missing");
        assert!(
            !ignored.iter().any(|pat| pat.trim_start_matches("**/").trim_end_matches('/') == needed),
            ".dockerignore excludes {needed}"
        );
    }
    for (i, a) in &ins {
        if i == "COPY" && !a.contains("--from=") {
            let words: Vec<&str> = a.split_whitespace().filter(|w| !w.starts_with("--")).collect();
            for src in &words[..words.len() - 1] {
                assert!(repo().join(src).exists(), "COPY source {src} does not exist");
            }
        }
    }
}

// ---------------------------------------------------------------- master key

/// The README's recipe for a master key file, run as written, makes a file
/// the broker loads (the rotation retires its key by id); 32 raw bytes do not.
#[test]
fn readme_master_key_recipe_makes_a_key_the_broker_accepts() {
    let readme = read("README.md");
    let section = readme.split("\n## Deployment\n").nth(1).expect("README has a Deployment section");
    let recipe =
        section.lines().find(|l| l.contains("head -c 32 /dev/urandom") && l.contains("> master.key")).expect("no key recipe").trim();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash").args(["-c", recipe]).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{recipe}: {out:?}");
    let key = dir.path().join("master.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "the recipe must make a mode 0600 file");
    let text = std::fs::read_to_string(&key).unwrap();
    let id = text.split_whitespace().nth(1).unwrap().to_string();
    assert!(text.starts_with("key k") && id.ends_with("-initial"), "{text}");

    let rotate = |key: &Path, data: &Path| {
        bin()
            .args(["keys", "rotate"])
            .env("CLOUDBROKER_DATA_DIR", data)
            .env("CLOUDBROKER_MASTER_KEY_FILE", key)
            .current_dir(data)
            .output()
            .unwrap()
    };
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = rotate(&key, &data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!(": {id}; dropped")), "the broker did not load key {id}: {stdout}");

    // 32 raw random bytes are refused.
    let raw = dir.path().join("raw.key");
    let out = std::process::Command::new("bash")
        .args(["-c", "umask 077 && head -c 32 /dev/urandom > raw.key"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let data2 = dir.path().join("data2");
    std::fs::create_dir(&data2).unwrap();
    let out = rotate(&raw, &data2);
    assert!(!out.status.success(), "a raw key file was accepted");
}
