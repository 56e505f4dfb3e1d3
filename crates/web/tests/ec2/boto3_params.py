"""Parameters the EC2 front used to refuse or drop (issue 22): CreateVolume's
ClientToken and RunInstances' DisableApiTermination, through boto3.

Run by crates/web/tests/ec2_params.rs with EP (the /ec2 endpoint), team keys
ALICE_AK/ALICE_SK and BOB_AK/BOB_SK (both members of one project), alice's
personal key SOLO_AK/SOLO_SK, and REGIONS ("region=zone=image,..."). For each
region (a sandbox instance, an ec2 instance in front of moto):
- a ClientToken answers the same volume to any member of the project, with
  the same parameters; other parameters are IdempotentParameterMismatch; a
  65-character token InvalidParameterValue; four concurrent calls with one
  token make one volume; a failed call releases its token; another project
  has tokens of its own;
- DisableApiTermination=true protects every VM of the launch from the moment
  RunInstances answers;
- security group rules name peer groups by name (Groups.M.GroupName,
  SourceSecurityGroupName), resolved among the project's groups in the VPC,
  and are revoked by SecurityGroupRuleId.N.
Prints a JSON summary the Rust test checks.
"""
import json
import os
import threading

import boto3
import botocore.handlers
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["EP"]
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


def client(who, region, auto_token=False):
    c = boto3.client("ec2", endpoint_url=EP, region_name=region, aws_access_key_id=os.environ[f"{who}_AK"],
                     aws_secret_access_key=os.environ[f"{who}_SK"], config=NO_RETRY)
    if not auto_token:
        # The tokens are the script's own: none is made up by botocore.
        c.meta.events.unregister("before-parameter-build", botocore.handlers.generate_idempotent_uuid)
    return c


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
    return None


def protected(c, iid):
    return c.describe_instance_attribute(InstanceId=iid, Attribute="disableApiTermination")["DisableApiTermination"]["Value"]


def volumes(region, zone):
    alice, bob, solo = client("ALICE", region), client("BOB", region), client("SOLO", region)
    out = {}
    first = alice.create_volume(Size=1, AvailabilityZone=zone, ClientToken=f"tok-{region}")
    vid = first["VolumeId"]
    again = alice.create_volume(Size=1, AvailabilityZone=zone, ClientToken=f"tok-{region}")
    by_bob = bob.create_volume(Size=1, AvailabilityZone=zone, ClientToken=f"tok-{region}")
    out["same"] = [again["VolumeId"] == vid, by_bob["VolumeId"] == vid, again["Size"], again["AvailabilityZone"] == zone]
    out["mismatch"] = code_of(alice.create_volume, Size=2, AvailabilityZone=zone, ClientToken=f"tok-{region}")
    out["mismatch_tags"] = code_of(alice.create_volume, Size=1, AvailabilityZone=zone, ClientToken=f"tok-{region}",
                                   TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}])
    out["too_long"] = code_of(alice.create_volume, Size=1, AvailabilityZone=zone, ClientToken="x" * 65)
    out["max_len"] = alice.create_volume(Size=1, AvailabilityZone=zone, ClientToken="y" * 64)["VolumeId"].startswith("vol-")
    # Another project (alice's personal key): a token of its own, another volume.
    out["other_project"] = solo.create_volume(Size=1, AvailabilityZone=zone, ClientToken=f"tok-{region}")["VolumeId"] != vid
    # Four at once with one token: one volume, answered to all.
    got, lock = [], threading.Lock()

    def create(c):
        v = c.create_volume(Size=3, AvailabilityZone=zone, ClientToken=f"race-{region}")["VolumeId"]
        with lock:
            got.append(v)
    threads = [threading.Thread(target=create, args=(client("ALICE" if i % 2 else "BOB", region),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["race"] = [len(got), len(set(got))]
    # A call the cloud refuses (io1 needs Iops) releases the token: other parameters then succeed.
    out["failed"] = code_of(alice.create_volume, Size=4, AvailabilityZone=zone, VolumeType="io1", ClientToken=f"fail-{region}")
    after = alice.create_volume(Size=4, AvailabilityZone=zone, VolumeType="io1", Iops=100, ClientToken=f"fail-{region}")
    out["after_failure"] = after["VolumeId"].startswith("vol-")
    # botocore's own fresh token per call: two calls, two volumes.
    auto = client("ALICE", region, auto_token=True)
    a1 = auto.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    a2 = auto.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    out["auto_tokens"] = a1 != a2
    # A deleted volume's token still answers it (as EC2 does), deleted.
    alice.delete_volume(VolumeId=vid)
    replay = alice.create_volume(Size=1, AvailabilityZone=zone, ClientToken=f"tok-{region}")
    out["replay_deleted"] = [replay["VolumeId"] == vid, replay["State"]]
    out["team_volumes"] = len(alice.describe_volumes()["Volumes"])
    return out


def termination(region, image_name):
    alice = client("ALICE", region)
    out = {}
    ami = next(i["ImageId"] for i in alice.describe_images()["Images"] if i["Name"] == image_name)
    r = alice.run_instances(ImageId=ami, MinCount=2, MaxCount=2, DisableApiTermination=True)
    ids = [i["InstanceId"] for i in r["Instances"]]
    # Read at once: no moment where a just-launched VM is unprotected.
    out["protected"] = [protected(alice, i) for i in ids]
    out["terminate"] = code_of(alice.terminate_instances, InstanceIds=[ids[0]])
    out["dry_run"] = code_of(alice.run_instances, ImageId=ami, MinCount=1, MaxCount=1, DisableApiTermination=True, DryRun=True)
    plain = alice.run_instances(ImageId=ami, MinCount=1, MaxCount=1, DisableApiTermination=False)["Instances"][0]["InstanceId"]
    out["plain"] = protected(alice, plain)
    for i in ids:
        alice.modify_instance_attribute(InstanceId=i, DisableApiTermination={"Value": False})
    states = alice.terminate_instances(InstanceIds=ids + [plain])["TerminatingInstances"]
    out["terminated_after"] = sorted({s["CurrentState"]["Name"] in ("shutting-down", "terminated") for s in states})
    return out


def rules_of(c, gid):
    rs = c.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroupRules"]
    return [r for r in rs if not r["IsEgress"]], [r for r in rs if r["IsEgress"]]


def peer(r):
    return r.get("ReferencedGroupInfo", {}).get("GroupId") or r.get("CidrIpv4")


def groups(region):
    alice, solo = client("ALICE", region), client("SOLO", region)
    out = {}
    web = alice.create_security_group(GroupName=f"web-{region}", Description="web")["GroupId"]
    db = alice.create_security_group(GroupName=f"db-{region}", Description="db")["GroupId"]
    owner = alice.describe_security_groups(GroupIds=[db])["SecurityGroups"][0]["OwnerId"]
    # A peer group by name in IpPermissions.
    alice.authorize_security_group_ingress(GroupId=db, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupName": f"web-{region}"}]}])
    ing, _ = rules_of(alice, db)
    out["by_name"] = [[r["IpProtocol"], r["FromPort"], peer(r) == web] for r in ing]
    # SourceSecurityGroupName: full ICMP, TCP and UDP from that group.
    alice.authorize_security_group_ingress(GroupId=db, SourceSecurityGroupName=f"web-{region}", SourceSecurityGroupOwnerId=owner)
    ing, _ = rules_of(alice, db)
    out["source"] = sorted([r["IpProtocol"], r["FromPort"], r["ToPort"], peer(r) == web] for r in ing)
    out["source_flat"] = code_of(alice.authorize_security_group_ingress, GroupId=db, SourceSecurityGroupName=f"web-{region}",
                                 IpProtocol="tcp")
    out["source_other_owner"] = code_of(alice.authorize_security_group_ingress, GroupId=db,
                                        SourceSecurityGroupName=f"web-{region}", SourceSecurityGroupOwnerId="someone-else")
    out["source_unknown"] = code_of(alice.authorize_security_group_ingress, GroupId=db, SourceSecurityGroupName="nope")
    out["name_unknown"] = code_of(alice.authorize_security_group_ingress, GroupId=db, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "UserIdGroupPairs": [{"GroupName": "nope"}]}])
    # Another project does not see the team's groups by name.
    mine = solo.create_security_group(GroupName=f"solo-{region}", Description="solo")["GroupId"]
    out["other_project"] = code_of(solo.authorize_security_group_ingress, GroupId=mine, SourceSecurityGroupName=f"web-{region}")
    # Revoke the source group's rules by name, then by rule id.
    alice.revoke_security_group_ingress(GroupId=db, SourceSecurityGroupName=f"web-{region}")
    ing, _ = rules_of(alice, db)
    out["after_source_revoke"] = [[r["IpProtocol"], r["FromPort"]] for r in ing]
    added = alice.authorize_security_group_ingress(GroupId=db, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.1.0.0/16"}]}])["SecurityGroupRules"]
    ssh = added[0]["SecurityGroupRuleId"]
    out["mixed"] = code_of(alice.revoke_security_group_ingress, GroupId=db, SecurityGroupRuleIds=[ssh], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.1.0.0/16"}]}])
    out["unknown_rule"] = code_of(alice.revoke_security_group_ingress, GroupId=db, SecurityGroupRuleIds=["sgr-0123456789abcdef0"])
    out["malformed_rule"] = code_of(alice.revoke_security_group_ingress, GroupId=db, SecurityGroupRuleIds=["rule-1"])
    egress = alice.authorize_security_group_egress(GroupId=db, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.2.0.0/16"}]}])["SecurityGroupRules"][0]
    out["wrong_direction"] = code_of(alice.revoke_security_group_ingress, GroupId=db, SecurityGroupRuleIds=[egress["SecurityGroupRuleId"]])
    alice.revoke_security_group_ingress(GroupId=db, SecurityGroupRuleIds=[ssh])
    alice.revoke_security_group_egress(GroupId=db, SecurityGroupRuleIds=[egress["SecurityGroupRuleId"]])
    ing, eg = rules_of(alice, db)
    out["after_id_revoke"] = [[r["IpProtocol"], r["FromPort"]] for r in ing], [peer(r) for r in eg]
    # The cloud's own view agrees (moto and the sandbox keep the rules).
    cloud = alice.describe_security_groups(GroupIds=[db])["SecurityGroups"][0]
    out["described"] = len(cloud["IpPermissions"])
    return out


def main():
    summary = {}
    for spec in os.environ["REGIONS"].split(","):
        region, zone, image = spec.split("=")
        summary[region] = {"volumes": volumes(region, zone), "termination": termination(region, image), "groups": groups(region)}
    print(json.dumps(summary))


main()
