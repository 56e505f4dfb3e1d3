"""Tags on VPCs, subnets, security groups and snapshots; groupSet and block
devices on instances; DescribeVolumes' encrypted/iops/throughput/snapshotId,
driven by boto3.

Run by crates/web/tests/ec2_tags_fields.rs with EP (the /ec2 endpoint),
ALICE_*/BOB_* keys (personal projects), OWNER_TEAM_*/VERA_TEAM_* keys (a
team project's owner and viewer) and REGIONS ("region=zone=image,..."): for
each region (a sandbox instance and an ec2 instance backed by moto) alice
tags her VPC, subnet, group and snapshot (DescribeTags, tagSet and tag
filters reflect each change at once; the 40-tag cap; dry runs; a mixed
CreateTags is all-or-nothing), bob and the team's viewer cannot, instances
show the groups and volumes they were launched with, and volumes show the
options they were made with. Prints a JSON summary the Rust test checks.
"""
import json
import os
import time

import boto3
import botocore.handlers
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["EP"]
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})
UNKNOWN_VPC = "vpc-0123456789abcdef0"


def client(who, region):
    c = boto3.client("ec2", endpoint_url=EP, region_name=region, aws_access_key_id=os.environ[f"{who}_AK"],
                     aws_secret_access_key=os.environ[f"{who}_SK"], config=NO_RETRY)
    c.meta.events.unregister("before-parameter-build", botocore.handlers.generate_idempotent_uuid)
    return c


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def wait(what, probe, timeout=60):
    deadline = time.time() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def tags_of(x):
    return {t["Key"]: t["Value"] for t in x.get("Tags", [])}


def instance(c, iid):
    return c.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]


def scenario(region, zone, image_name):
    a, b = client("ALICE", region), client("BOB", region)
    o = {}
    ami = next(i["ImageId"] for i in a.describe_images()["Images"] if i["Name"] == image_name)
    vid = a.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    sid = a.create_subnet(VpcId=vid, CidrBlock="10.42.1.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
    gid = a.create_security_group(GroupName="web", Description="web tier", VpcId=vid)["GroupId"]
    vol = a.create_volume(Size=2, AvailabilityZone=zone)["VolumeId"]
    wait("volume available", lambda: a.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] == "available")
    snap = a.create_snapshot(VolumeId=vol, Description="t")["SnapshotId"]
    objects = [vid, sid, gid, snap]

    # 1. Tags on every recorded object, seen at once.
    a.create_tags(Resources=objects, Tags=[{"Key": "Name", "Value": "blue"}, {"Key": "env", "Value": "dev"}])
    vpc = a.describe_vpcs(VpcIds=[vid])["Vpcs"][0]
    subnet = a.describe_subnets(SubnetIds=[sid])["Subnets"][0]
    group = a.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]
    snapshot = a.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]
    want = {"Name": "blue", "env": "dev"}
    o["tag_sets"] = [tags_of(x) == want for x in (vpc, subnet, group, snapshot)]
    n = lambda fn, key, name, vals: len(fn(Filters=[{"Name": name, "Values": vals}])[key])
    o["tag_filters"] = [
        n(a.describe_vpcs, "Vpcs", "tag:Name", ["blue"]),
        n(a.describe_subnets, "Subnets", "tag-key", ["env"]),
        n(a.describe_security_groups, "SecurityGroups", "tag:env", ["dev"]),
        n(a.describe_snapshots, "Snapshots", "tag:Name", ["blue"]),
    ]
    listed = a.describe_tags(Filters=[{"Name": "resource-id", "Values": objects}])["Tags"]
    o["describe_tags"] = sorted({(t["ResourceId"] == {"vpc": vid, "subnet": sid, "security-group": gid, "snapshot": snap}.get(t["ResourceType"]),
                                  t["ResourceType"]) for t in listed})
    o["describe_tags_count"] = len(listed)
    o["by_type"] = [len(a.describe_tags(Filters=[{"Name": "resource-type", "Values": [t]}, {"Name": "key", "Values": ["env"]}])["Tags"])
                    for t in ("vpc", "subnet", "security-group", "snapshot")]
    a.delete_tags(Resources=[vid, gid], Tags=[{"Key": "env"}])
    o["deleted_one"] = [tags_of(a.describe_vpcs(VpcIds=[vid])["Vpcs"][0]),
                        n(a.describe_security_groups, "SecurityGroups", "tag-key", ["env"])]
    a.delete_tags(Resources=[sid])
    o["deleted_all"] = tags_of(a.describe_subnets(SubnetIds=[sid])["Subnets"][0])
    o["delete_value_mismatch"] = [code_of(a.delete_tags, Resources=[snap], Tags=[{"Key": "env", "Value": "prod"}]),
                                  tags_of(a.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0])]
    # The cap: 40 tags, Name among them.
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(39)]
    a.create_tags(Resources=[vid], Tags=many)
    o["cap"] = [len(tags_of(a.describe_vpcs(VpcIds=[vid])["Vpcs"][0])),
                code_of(a.create_tags, Resources=[vid], Tags=[{"Key": "one-more", "Value": "v"}])]
    a.delete_tags(Resources=[vid], Tags=[{"Key": t["Key"]} for t in many])
    o["reserved"] = code_of(a.create_tags, Resources=[vid], Tags=[{"Key": "aws:x", "Value": "v"}])
    # Dry runs change nothing.
    o["dry"] = [code_of(a.create_tags, Resources=objects, Tags=[{"Key": "dry", "Value": "1"}], DryRun=True),
                code_of(a.delete_tags, Resources=objects, DryRun=True),
                len(a.describe_tags(Filters=[{"Name": "key", "Values": ["dry"]}])["Tags"]),
                tags_of(a.describe_vpcs(VpcIds=[vid])["Vpcs"][0])]
    # Another project's ids are the kind's NotFound; unknown ones too.
    o["bob"] = [code_of(b.create_tags, Resources=[x], Tags=[{"Key": "k", "Value": "v"}]) for x in objects]
    o["bob_delete"] = [code_of(b.delete_tags, Resources=[x]) for x in objects]
    o["bob_sees"] = len(b.describe_tags(Filters=[{"Name": "resource-id", "Values": objects}])["Tags"])
    o["unknown"] = code_of(a.create_tags, Resources=[UNKNOWN_VPC], Tags=[{"Key": "k", "Value": "v"}])

    # 2-3. groupSet and block devices, recorded at launch.
    bdm = [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 2, "DeleteOnTermination": False}}]
    run = a.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=sid, SecurityGroupIds=[gid], BlockDeviceMappings=bdm)
    iid = run["Instances"][0]["InstanceId"]
    o["run_groups"] = [(g["GroupId"] == gid, g["GroupName"]) for g in run["Instances"][0].get("SecurityGroups", [])]
    i = instance(a, iid)
    o["groups"] = [(g["GroupId"] == gid, g["GroupName"]) for g in i.get("SecurityGroups", [])]
    sdf = [d for d in i.get("BlockDeviceMappings", []) if d["DeviceName"] == "/dev/sdf"]
    o["sdf"] = [(d["Ebs"]["VolumeId"].startswith("vol-"), d["Ebs"]["DeleteOnTermination"], d["Ebs"]["Status"]) for d in sdf]
    plain = a.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    p = instance(a, plain)
    root = [d for d in p.get("BlockDeviceMappings", []) if d["DeviceName"] == p["RootDeviceName"]]
    o["root"] = [(p["RootDeviceName"], d["Ebs"]["VolumeId"].startswith("vol-"), d["Ebs"]["DeleteOnTermination"]) for d in root]
    o["plain_groups"] = [g["GroupName"] for g in p.get("SecurityGroups", [])]
    f = lambda name, vals: sorted(x["InstanceId"] == iid for r in a.describe_instances(
        Filters=[{"Name": name, "Values": vals}])["Reservations"] for x in r["Instances"])
    o["instance_filters"] = [f("instance.group-id", [gid]), f("instance.group-name", ["web"]), f("group-id", [gid]),
                             f("group-name", ["nope"]), f("block-device-mapping.device-name", ["/dev/sdf"]),
                             f("block-device-mapping.volume-id", [sdf[0]["Ebs"]["VolumeId"]] if sdf else ["vol-x"])]
    # A mixed CreateTags (an instance, a volume, a VPC and an unknown VPC) changes nothing.
    o["mixed"] = [code_of(a.create_tags, Resources=[iid, vol, vid, UNKNOWN_VPC], Tags=[{"Key": "mix", "Value": "1"}]),
                  len(a.describe_tags(Filters=[{"Name": "key", "Values": ["mix"]}])["Tags"])]
    a.create_tags(Resources=[iid, vol, vid], Tags=[{"Key": "mix", "Value": "1"}])
    o["mixed_ok"] = sorted(t["ResourceType"] for t in a.describe_tags(Filters=[{"Name": "key", "Values": ["mix"]}])["Tags"])

    # 4. Volumes' options.
    fast = a.create_volume(Size=10, AvailabilityZone=zone, VolumeType="gp3", Iops=4000, Throughput=250, Encrypted=True)
    o["create_answer"] = [fast["Encrypted"], fast.get("Iops"), fast.get("Throughput")]
    from_snap = a.create_volume(SnapshotId=snap, AvailabilityZone=zone)["VolumeId"]
    v = {x["VolumeId"]: x for x in a.describe_volumes(VolumeIds=[fast["VolumeId"], from_snap, vol])["Volumes"]}
    fv = v[fast["VolumeId"]]
    o["volume_fields"] = [fv["Encrypted"], fv.get("Iops"), fv.get("Throughput"), fv.get("SnapshotId", ""),
                          v[from_snap].get("SnapshotId") == snap, v[vol]["Encrypted"], v[vol].get("SnapshotId", "")]
    vf = lambda name, vals: sorted(x["VolumeId"] == fast["VolumeId"] or x["VolumeId"] == from_snap
                                   for x in a.describe_volumes(Filters=[{"Name": name, "Values": vals}])["Volumes"])
    o["volume_filters"] = [vf("encrypted", ["true"]), vf("snapshot-id", [snap])]
    o["unencrypted_has_fast"] = fast["VolumeId"] in [x["VolumeId"] for x in a.describe_volumes(
        Filters=[{"Name": "encrypted", "Values": ["false"]}])["Volumes"]]

    a.terminate_instances(InstanceIds=[iid, plain])
    return o


def team(region):
    """The team's owner makes a VPC; its viewer reads its tags and cannot change them."""
    owner, viewer = client("OWNER_TEAM", region), client("VERA_TEAM", region)
    vid = owner.create_vpc(CidrBlock="10.77.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "team"}]}])["Vpc"]["VpcId"]
    return [
        code_of(viewer.create_tags, Resources=[vid], Tags=[{"Key": "k", "Value": "v"}]),
        code_of(viewer.delete_tags, Resources=[vid]),
        code_of(viewer.create_tags, Resources=[vid], Tags=[{"Key": "k", "Value": "v"}], DryRun=True),
        [(t["ResourceType"], t["Key"], t["Value"]) for t in viewer.describe_tags(Filters=[{"Name": "resource-id", "Values": [vid]}])["Tags"]],
    ]


summary = {}
for spec in os.environ["REGIONS"].split(","):
    region, zone, image = spec.split("=")
    summary[region] = scenario(region, zone, image)
    summary[region]["team"] = team(region)
print(json.dumps(summary))
