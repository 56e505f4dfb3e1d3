//! The `ec2` connector reads the time a stop or terminate began from EC2's
//! `StateTransitionReason` (`User initiated (… GMT)`; moto writes `UTC`),
//! against a real moto server on loopback: what metering bills a stop the
//! broker learns late until. A running VM reports none. Needs the venv
//! made by `scripts/python-venv`.
#![allow(clippy::unwrap_used, clippy::panic)]

use chrono::{Duration, DurationRound, Utc};
use cloudbroker_connector_api::model::tags;
use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::{Connector, Credentials, DescribeFilter, InstanceName, RunRequest, VmState};
use cloudbroker_connector_ec2::{Ec2Connector, Ec2Options};
use cloudbroker_testkit::{MotoOptions, MotoServer};

fn creds() -> Credentials {
    Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
}

fn connector(moto: &MotoServer) -> Ec2Connector {
    let values = [("region", "us-east-1".to_string()), ("timeout.seconds", "20".into()), ("endpoint", moto.endpoint())];
    let params = ParamValues::new(values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
    let options = Ec2Options { base_delay: std::time::Duration::from_millis(20), ..Ec2Options::default() };
    Ec2Connector::new(InstanceName::parse("ec2-moto").unwrap(), &params, options).unwrap()
}

#[tokio::test]
async fn stops_and_terminates_carry_the_clouds_time() {
    let moto = MotoServer::start(MotoOptions::default());
    let c = connector(&moto);
    let cr = creds();
    let run = RunRequest {
        image_id: "ami-12c6146b".into(),
        instance_type: "t2.micro".into(),
        count: 2,
        tags: vec![(tags::BROKER.into(), "broker-t".into())],
        client_token: "broker-t-1".into(),
        ..RunRequest::default()
    };
    let ids: Vec<String> = c.run_instances(&cr, &run).await.unwrap().into_iter().map(|v| v.id).collect();
    let describe = || async { c.describe_instances(&cr, &DescribeFilter::ids(&ids)).await.unwrap() };
    assert!(describe().await.iter().all(|v| v.state == VmState::Running && v.state_since.is_none()), "a running VM gives no time");

    // moto's reason has whole seconds: the time lies within the call, to the second.
    let before = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    c.stop_instances(&cr, std::slice::from_ref(&ids[0])).await.unwrap();
    let after = Utc::now();
    let vms = describe().await;
    let stopped = vms.iter().find(|v| v.id == ids[0]).unwrap();
    assert_eq!(stopped.state, VmState::Stopped);
    let since = stopped.state_since.expect("a stopped VM gives the time of its stop");
    assert!(since >= before && since <= after, "{since} not within {before}..{after}");
    assert!(vms.iter().find(|v| v.id == ids[1]).unwrap().state_since.is_none());

    // Started again: no time (the reason is cleared); terminated: the terminate's.
    c.start_instances(&cr, std::slice::from_ref(&ids[0])).await.unwrap();
    assert!(describe().await.iter().all(|v| v.state_since.is_none()));
    let before = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    c.terminate_instances(&cr, &ids).await.unwrap();
    let after = Utc::now();
    for v in describe().await {
        assert_eq!(v.state, VmState::Terminated);
        let since = v.state_since.expect("a terminated VM gives the time of its terminate");
        assert!(since >= before && since <= after, "{since} not within {before}..{after}");
    }
}
