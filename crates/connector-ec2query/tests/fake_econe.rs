//! The connector against a small econe-like HTTP server on loopback, for what
//! moto cannot show: an endpoint *path* (econe's `ssl_server`), signatures
//! checked over that path in both modes, a cloud without DescribeRegions,
//! DescribeInstanceTypes, security groups or `TagSpecification`, and an old
//! API namespace.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::Utc;
use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::{tags, Connector, ConnectorError, Credentials, DescribeFilter, InstanceName, RunRequest, VmState};
use cloudbroker_connector_ec2query::Ec2QueryConnector;
use cloudbroker_sigv::{check_v2_time, parse_authorization_header, parse_form_urlencoded, sha256_hex, verify_v2, verify_v4, SigV4Request};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "oneuser";
const SECRET: &str = "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8";
const PATH: &str = "/one/ec2/";
const NS: &str = "http://ec2.amazonaws.com/doc/2010-08-31/";

/// One request as the fake server saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    signature: &'static str,
    action: String,
    params: Vec<(String, String)>,
}

impl Seen {
    fn param(&self, k: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    tagged: Vec<(String, String, String)>,
}

struct FakeEcone {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeEcone {
    async fn start() -> FakeEcone {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, st).await;
                });
            }
        });
        FakeEcone { port, state }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn actions(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.action).collect()
    }
}

/// Reads one HTTP/1.1 request, answers it, closes the connection.
async fn serve(mut sock: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&body).to_string();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let params = parse_form_urlencoded(&body).unwrap_or_default();

    // Check the signature over the path as sent, in whichever mode was used.
    let (signature, verified) = match header("authorization") {
        Some(auth) => {
            let ok = parse_authorization_header(&auth).ok().is_some_and(|a| {
                a.check_scope("opennebula", "ec2").is_ok()
                    && verify_v4(&SigV4Request::new(&method, &path, &[], &headers, &sha256_hex(body.as_bytes())), &a, SECRET).is_ok()
            });
            ("4", ok)
        }
        None => {
            let host = header("host").unwrap_or_default();
            let ok = verify_v2(&method, &host, &path, &params, SECRET).is_ok() && check_v2_time(&params, Utc::now(), 900).is_ok();
            ("2", ok)
        }
    };
    let action = params.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()).unwrap_or_default();
    let seen = Seen { path: path.clone(), signature, action: action.clone(), params: params.clone() };
    let (status, xml) = {
        let mut st = state.lock().unwrap();
        st.seen.push(seen.clone());
        if path != PATH {
            (404, "<html><body>Not Found</body></html>".to_string())
        } else if !verified || params.iter().find(|(k, _)| k == "AWSAccessKeyId").is_some_and(|(_, v)| v != USER) {
            (400, error("AuthFailure", "User couldn't be authenticated, aborting call."))
        } else {
            answer(&mut st, &seen)
        }
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        501 => "Not Implemented",
        _ => "Error",
    };
    let resp =
        format!("HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}", xml.len());
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}

fn error(code: &str, message: &str) -> String {
    format!("<?xml version=\"1.0\"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>r-1</RequestID></Response>")
}

fn instance_xml(id: &str, state: &str, tags: &[(String, String)]) -> String {
    let tag_set = if tags.is_empty() {
        String::new()
    } else {
        format!(
            "<tagSet>{}</tagSet>",
            tags.iter().map(|(k, v)| format!("<item><key>{k}</key><value>{v}</value></item>")).collect::<String>()
        )
    };
    format!(
        "<item><instanceId>{id}</instanceId><imageId>ami-00000003</imageId><instanceState><code>16</code><name>{state}</name></instanceState>\
         <privateDnsName>10.0.0.{n}</privateDnsName><dnsName>10.0.0.{n}</dnsName><keyName>default</keyName><instanceType>m1.small</instanceType>\
         <launchTime>2013-09-04T10:23:11+02:00</launchTime><privateIpAddress>10.0.0.{n}</privateIpAddress>{tag_set}</item>",
        n = id.trim_start_matches("i-")
    )
}

/// What econe-like clouds answer: no DescribeRegions, no instance types, no
/// security groups, RunInstances ignoring TagSpecification, filters ignored.
fn answer(st: &mut State, req: &Seen) -> (u16, String) {
    match req.action.as_str() {
        "DescribeRegions" | "DescribeInstanceTypes" => (400, error("InvalidAction", &format!("The action {} is not valid for this web service.", req.action))),
        "DescribeSecurityGroups" => (501, String::new()),
        "RunInstances" => {
            let items = ["i-100", "i-101"].iter().map(|id| instance_xml(id, "pending", &[])).collect::<String>();
            (200, format!("<RunInstancesResponse xmlns=\"{NS}\"><requestId>x</requestId><reservationId>default</reservationId><ownerId>oneuser</ownerId><instancesSet>{items}</instancesSet></RunInstancesResponse>"))
        }
        "CreateTags" => {
            let ids: Vec<&str> = (1..).map_while(|i| req.param(&format!("ResourceId.{i}"))).collect();
            for i in 1.. {
                let (Some(k), Some(v)) = (req.param(&format!("Tag.{i}.Key")), req.param(&format!("Tag.{i}.Value"))) else { break };
                for id in &ids {
                    st.tagged.push((id.to_string(), k.to_string(), v.to_string()));
                }
            }
            (200, format!("<CreateTagsResponse xmlns=\"{NS}\"><requestId>x</requestId><return>true</return></CreateTagsResponse>"))
        }
        "DescribeInstances" => {
            // Filters are ignored, as by old econe versions: everything comes back.
            let tags_of = |id: &str| st.tagged.iter().filter(|(i, _, _)| i == id).map(|(_, k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
            let items: String = ["i-100", "i-101", "i-200"].iter().map(|id| instance_xml(id, "running", &tags_of(id))).collect();
            (200, format!("<DescribeInstancesResponse xmlns=\"{NS}\"><requestId>x</requestId><reservationSet><item><reservationId>default</reservationId><ownerId>oneuser</ownerId><instancesSet>{items}</instancesSet></item></reservationSet></DescribeInstancesResponse>"))
        }
        "StopInstances" => (
            200,
            format!("<StopInstancesResponse xmlns=\"{NS}\"><instancesSet><item><instanceId>{}</instanceId><currentState><code>64</code><name>stopping</name></currentState><previousState><code>16</code><name>running</name></previousState></item></instancesSet></StopInstancesResponse>", req.param("InstanceId.1").unwrap_or_default()),
        ),
        "DescribeImages" => (200, format!("<DescribeImagesResponse xmlns=\"{NS}\"><imagesSet><item><imageId>ami-00000003</imageId><imageLocation>ttylinux</imageLocation><imageState>available</imageState><imageOwnerId>oneuser</imageOwnerId></item></imagesSet></DescribeImagesResponse>")),
        other => (400, error("UnsupportedOperation", &format!("The operation {other} is not supported"))),
    }
}

fn connector(endpoint: &str, signature: &str) -> Ec2QueryConnector {
    let pairs = BTreeMap::from([("endpoint".to_string(), endpoint.to_string()), ("signature.version".to_string(), signature.to_string())]);
    Ec2QueryConnector::from_params(InstanceName::parse("one-lab").unwrap(), &ParamValues::new(pairs)).unwrap()
}

fn creds() -> Credentials {
    Credentials::new(USER, SECRET)
}

async fn econe_session(sig: &'static str) {
    let fake = FakeEcone::start().await;
    let conn = connector(&fake.endpoint(PATH), sig);

    // DescribeRegions is missing: the check falls back to DescribeInstances.
    let check = conn.validate_credentials(&creds()).await.unwrap();
    assert_eq!(check.account.as_deref(), Some("oneuser"));
    assert!(check.message.contains("no DescribeRegions"), "{check:?}");
    assert_eq!(fake.actions(), ["DescribeRegions", "DescribeInstances"]);
    let seen = fake.seen();
    assert!(seen.iter().all(|s| s.path == PATH && s.signature == sig), "{seen:?}");
    assert_eq!(seen[1].param("MaxResults"), Some("5"));
    assert_eq!(seen[1].param("Version"), Some("2016-11-15"));
    if sig == "2" {
        assert_eq!(seen[0].param("SignatureMethod"), Some("HmacSHA256"));
        assert_eq!(seen[0].param("AWSAccessKeyId"), Some(USER));
    }

    // A wrong secret is an authentication error (econe answers 400 AuthFailure).
    let e = conn.validate_credentials(&Credentials::new(USER, "wrong")).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Auth { ref code, .. } if code == "AuthFailure"), "{e:?}");

    // No security groups: nothing to ensure.
    conn.ensure_security_group(&creds(), "default").await.unwrap();

    // RunInstances ignores TagSpecification: the connector tags with CreateTags.
    let req = RunRequest {
        image_id: "ami-00000003".into(),
        instance_type: "m1.small".into(),
        count: 2,
        tags: vec![(tags::LAUNCH.into(), "L1".into()), (tags::NAME.into(), "web server".into())],
        client_token: "L1-0".into(),
        ..RunRequest::default()
    };
    let vms = conn.run_instances(&creds(), &req).await.unwrap();
    assert_eq!(vms.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["i-100", "i-101"]);
    assert!(vms.iter().all(|v| v.tag(tags::LAUNCH) == Some("L1") && v.tag(tags::NAME) == Some("web server")), "{vms:?}");
    let run = fake.seen().into_iter().find(|s| s.action == "RunInstances").unwrap();
    assert_eq!(run.param("SecurityGroup.1"), Some("default"));
    assert_eq!(run.param("TagSpecification.1.Tag.2.Value"), Some("web server"));
    let create = fake.seen().into_iter().find(|s| s.action == "CreateTags").unwrap();
    assert_eq!(
        (create.param("ResourceId.1"), create.param("ResourceId.2"), create.param("Tag.2.Value")),
        (Some("i-100"), Some("i-101"), Some("web server"))
    );

    // The cloud ignores the tag filter; the connector filters again (i-200 is not ours).
    let found = conn.describe_instances(&creds(), &DescribeFilter::tag(tags::LAUNCH, "L1")).await.unwrap();
    assert_eq!(found.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["i-100", "i-101"]);
    assert!(found.iter().all(|v| v.state == VmState::Running && v.private_ip.is_some()));
    let describe = fake.seen().into_iter().rev().find(|s| s.action == "DescribeInstances").unwrap();
    assert_eq!((describe.param("Filter.1.Name"), describe.param("Filter.1.Value.1")), (Some("tag:cloudbroker:launch"), Some("L1")));

    let stopped = conn.stop_instances(&creds(), &["i-100".into()]).await.unwrap();
    assert_eq!((stopped[0].previous, stopped[0].current), (VmState::Running, VmState::Stopping));
    let images = conn.list_images(&creds()).await.unwrap();
    assert_eq!(images[0].id, "ami-00000003");

    // No DescribeInstanceTypes and no instance.types parameter: Unsupported, saying what to do.
    let e = conn.list_instance_types(&creds()).await.unwrap_err();
    match &e {
        ConnectorError::Unsupported { operation } => {
            assert!(operation.starts_with("DescribeInstanceTypes on this cloud (the cloud answered InvalidAction"), "{operation}");
            assert!(operation.contains("set the instance.types parameter of connector instance 'one-lab'"), "{operation}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    // Other missing operations: Unsupported with the action's name, never retried.
    let before = fake.seen().len();
    let e = conn.import_key_pair(&creds(), "k", "ssh-ed25519 AAAA").await.unwrap_err();
    assert_eq!(
        e,
        ConnectorError::Unsupported {
            operation:
                "ImportKeyPair on this cloud (the cloud answered UnsupportedOperation: The operation ImportKeyPair is not supported)".into()
        }
    );
    assert_eq!(fake.seen().len(), before + 1);
}

#[tokio::test]
async fn econe_like_cloud_with_sigv2_over_an_endpoint_path() {
    econe_session("2").await;
}

#[tokio::test]
async fn econe_like_cloud_with_sigv4_over_an_endpoint_path() {
    econe_session("4").await;
}

#[tokio::test]
async fn the_endpoint_path_is_what_gets_signed_and_requested() {
    let fake = FakeEcone::start().await;
    // Without the path the request goes to "/" (404 here, not retried) ...
    let e = connector(&fake.endpoint("/"), "2").validate_credentials(&creds()).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Cloud { ref code, .. } if code == "HTTP404"), "{e:?}");
    assert_eq!(fake.seen().len(), 1);
    assert_eq!(fake.seen()[0].path, "/");
    // ... with it, to the path, signed over the path (in both modes).
    for sig in ["2", "4"] {
        connector(&fake.endpoint(PATH), sig).validate_credentials(&creds()).await.unwrap();
    }
    assert!(fake.seen()[1..].iter().all(|s| s.path == PATH));
}
