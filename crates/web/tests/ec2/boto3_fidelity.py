"""Issue 22 items 1, 2 and 5 through the EC2 front-end, driven by boto3:
tags kept verbatim (Name on every instance of a launch, CreateTags Name
renames), no parameter dropped (placement, block devices, shutdown
behaviour, volume IOPS/encryption/throughput, key types; what the broker
does not honour is refused by name), and a cloud's refusal answered as 400
with the cloud's code.

Usage: boto3_fidelity.py REGION ZONE IMAGE_NAME [MOTO_ENDPOINT]
with EP (the /ec2 endpoint) and ALICE_AK/ALICE_SK in the environment. With
MOTO_ENDPOINT (an `ec2` region in front of moto), what reached the cloud is
read back from moto with alice's cloud keys (MOTO_AK/MOTO_SK). Asserts as it
goes; prints a JSON summary the Rust test checks.
"""
import json
import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

REGION, ZONE, IMAGE = sys.argv[1], sys.argv[2], sys.argv[3]
MOTO_EP = sys.argv[4] if len(sys.argv) > 4 else None
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})
alice = boto3.client("ec2", endpoint_url=os.environ["EP"], region_name=REGION, aws_access_key_id=os.environ["ALICE_AK"],
                     aws_secret_access_key=os.environ["ALICE_SK"], config=NO_RETRY)
cloud = None
if MOTO_EP:
    cloud = boto3.client("ec2", endpoint_url=MOTO_EP, region_name="us-east-1", aws_access_key_id=os.environ["MOTO_AK"],
                         aws_secret_access_key=os.environ["MOTO_SK"], config=NO_RETRY)
out = {}


def refusal(fn, **kw):
    """(HTTP status, code) of a refused call; None when it succeeds."""
    try:
        fn(**kw)
    except ClientError as e:
        return [e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]]
    return None


def wait(what, probe, timeout=60):
    deadline = time.time() + timeout
    while not probe():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def instance(iid):
    return alice.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]


def tags(i):
    return {t["Key"]: t["Value"] for t in i.get("Tags", [])}


ami = next(i["ImageId"] for i in alice.describe_images()["Images"] if i["Name"] == IMAGE)

# 1. Tags verbatim: Name=chk on both VMs of one launch.
spec = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "chk"}, {"Key": "team", "Value": "a"}]}]
run = alice.run_instances(ImageId=ami, MinCount=2, MaxCount=2, TagSpecifications=spec)["Instances"]
ids = [i["InstanceId"] for i in run]
out["run_names"] = [tags(i).get("Name") for i in run]
out["described_names"] = [tags(instance(i)).get("Name") for i in ids]
found = alice.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["chk"]}])["Reservations"]
out["filter_name"] = sorted(i["InstanceId"] for r in found for i in r["Instances"]) == sorted(ids)
named = alice.describe_tags(Filters=[{"Name": "key", "Values": ["Name"]}])["Tags"]
out["describe_tags_name"] = sorted((t["ResourceId"] in ids, t["Value"]) for t in named)
if cloud:
    out["cloud_names"] = sorted(tags(i).get("Name") for r in cloud.describe_instances(
        Filters=[{"Name": "tag:Name", "Values": ["chk"]}])["Reservations"] for i in r["Instances"])
# CreateTags Name renames; DeleteTags Name removes the tag.
alice.create_tags(Resources=[ids[0]], Tags=[{"Key": "Name", "Value": "renamed"}])
alice.delete_tags(Resources=[ids[1]], Tags=[{"Key": "Name"}])
out["after_rename"] = [tags(instance(ids[0])).get("Name"), tags(instance(ids[1])).get("Name")]
out["renamed_ids"] = ids
if cloud:
    c = {i["InstanceId"]: tags(i).get("Name") for r in cloud.describe_instances()["Reservations"] for i in r["Instances"]}
    out["cloud_renamed"] = sorted(v for v in c.values() if v in ("renamed", "chk"))

# 2. Parameters honoured: placement, block devices, shutdown behaviour, user data.
bdm = [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 10, "VolumeType": "gp3", "Iops": 3000, "Encrypted": True,
                                            "DeleteOnTermination": True}}]
placed = alice.run_instances(ImageId=ami, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": ZONE}, BlockDeviceMappings=bdm,
                             InstanceInitiatedShutdownBehavior="terminate", UserData="#!/bin/sh\necho hi\n",
                             Monitoring={"Enabled": False})["Instances"][0]
out["placed"] = placed["InstanceId"].startswith("i-")
if cloud:
    mine = [i for r in cloud.describe_instances()["Reservations"] for i in r["Instances"]
            if any(t["Key"] == "cloudbroker:launch" for t in i.get("Tags", [])) and ZONE == i["Placement"]["AvailabilityZone"]]
    out["cloud_zone"] = len(mine) >= 1
    devices = sorted(d["DeviceName"] for i in mine for d in i.get("BlockDeviceMappings", []))
    out["cloud_device"] = "/dev/sdf" in devices
    attr = cloud.describe_instance_attribute(InstanceId=mine[-1]["InstanceId"], Attribute="instanceInitiatedShutdownBehavior")
    out["cloud_shutdown"] = attr["InstanceInitiatedShutdownBehavior"]["Value"]
# What the cloud refuses comes back with its code, as a client error.
if not cloud:
    out["wrong_zone"] = refusal(alice.run_instances, ImageId=ami, MinCount=1, MaxCount=1,
                                Placement={"AvailabilityZone": ZONE[:-1] + "z"})
    out["iops_on_gp2"] = refusal(alice.run_instances, ImageId=ami, MinCount=1, MaxCount=1, BlockDeviceMappings=[
        {"DeviceName": "/dev/sdg", "Ebs": {"VolumeSize": 1, "VolumeType": "gp2", "Iops": 500}}])
# What the broker does not honour is refused by name.
out["ebs_optimized"] = refusal(alice.run_instances, ImageId=ami, MinCount=1, MaxCount=1, EbsOptimized=True)
out["snapshot_in_mapping"] = refusal(alice.run_instances, ImageId=ami, MinCount=1, MaxCount=1,
                                     BlockDeviceMappings=[{"DeviceName": "/dev/sdh", "Ebs": {"SnapshotId": "snap-12345678"}}])
out["volume_tag_spec"] = refusal(alice.run_instances, ImageId=ami, MinCount=1, MaxCount=1,
                                 TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}])
out["bad_shutdown"] = refusal(alice.run_instances, ImageId=ami, MinCount=1, MaxCount=1, InstanceInitiatedShutdownBehavior="hibernate")

# CreateVolume: Iops, Encrypted, Throughput reach the cloud.
vol = alice.create_volume(Size=4, AvailabilityZone=ZONE, VolumeType="gp3", Iops=4000, Throughput=250, Encrypted=True)["VolumeId"]
out["volume"] = vol.startswith("vol-")
if cloud:
    v = cloud.describe_volumes(VolumeIds=[vol])["Volumes"][0]
    out["cloud_volume"] = [v["Encrypted"], v.get("Iops"), v["VolumeType"]]
else:
    out["throughput_on_gp2"] = refusal(alice.create_volume, Size=4, AvailabilityZone=ZONE, VolumeType="gp2", Throughput=250)
out["kms_key"] = refusal(alice.create_volume, Size=4, AvailabilityZone=ZONE, KmsKeyId="alias/x", Encrypted=True)

# CreateKeyPair: KeyType and KeyFormat.
rsa = alice.create_key_pair(KeyName=f"k-rsa-{REGION}", KeyType="rsa", KeyFormat="pem")
out["rsa"] = rsa["KeyMaterial"].startswith("-----BEGIN") and "PRIVATE KEY-----" in rsa["KeyMaterial"]
alice.create_key_pair(KeyName=f"k-ed-{REGION}", KeyType="ed25519")
pairs = alice.describe_key_pairs(KeyNames=[f"k-rsa-{REGION}", f"k-ed-{REGION}"])["KeyPairs"]
out["public_keys"] = sorted(p.get("PublicKey", "").split(" ")[0] for p in pairs)
out["ppk"] = refusal(alice.create_key_pair, KeyName=f"k-ppk-{REGION}", KeyFormat="ppk")

# 5. A cloud's refusal: 400 with its code.
wait("running", lambda: all(instance(i)["State"]["Name"] == "running" for i in ids))
alloc = alice.allocate_address(Domain="vpc")["AllocationId"]
alice.associate_address(AllocationId=alloc, InstanceId=ids[0])
out["reassociate"] = refusal(alice.associate_address, AllocationId=alloc, InstanceId=ids[1])
out["unknown_volume"] = refusal(alice.describe_volumes, VolumeIds=["vol-0000000000000dead"])
out["unknown_volume_odd"] = refusal(alice.delete_volume, VolumeId="vol-does-not-exist")
out["malformed_volume"] = refusal(alice.delete_volume, VolumeId="disk-1")
if not cloud:
    out["detach_available"] = refusal(alice.detach_volume, VolumeId=vol)

# Clean up.
alice.disassociate_address(AssociationId=alice.describe_addresses(AllocationIds=[alloc])["Addresses"][0]["AssociationId"])
alice.release_address(AllocationId=alloc)
alice.delete_volume(VolumeId=vol)
alice.terminate_instances(InstanceIds=ids + [placed["InstanceId"]])
print(json.dumps(out))
