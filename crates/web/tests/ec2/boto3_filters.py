"""Describe filters, pagination and fields through the EC2 front-end, driven by boto3.

Run by crates/web/tests/ec2_filters.rs as `boto3_filters.py EP REGION VOLUME_ZONE IMAGE RAW_AMI`
with ALICE_AK/ALICE_SK in the environment, once on a sandbox region and once
on an `ec2` region in front of moto (issue 22, items 3, 4 and 6):
- every filter AWS documents for the implemented Describe actions, each at
  least once with a match and a non-match; wildcards; unknown filters are
  InvalidParameterValue naming the filter;
- MaxResults/NextToken on DescribeVolumes, DescribeInstanceStatus,
  DescribeTags, DescribeInstanceTypes (pages put together give the whole
  answer; a bad MaxResults or token is refused);
- fields: BlockDeviceMappings, RootDeviceName/Type, Placement, ZoneId,
  KeyPairId, tags on key pairs and Elastic IPs, a raw image id as given.
Asserts as it goes; prints a JSON summary the Rust test checks.
"""
import base64
import json
import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP, REGION, VZONE, IMAGE, RAW_AMI = sys.argv[1:6]
# The region's one zone (instances are placed in it); volumes are made in
# the cloud's own zone (VZONE: moto checks it).
ZONE = REGION + "a"
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})
C = boto3.client("ec2", endpoint_url=EP, region_name=REGION, aws_access_key_id=os.environ["ALICE_AK"],
                 aws_secret_access_key=os.environ["ALICE_SK"], config=NO_RETRY)
OUT = {"checked": []}
# An OpenSSH RSA public key (ImportKeyPair).
RSA_PUB = ('ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCIWZV5PNODwRaWK2BJdO5AXRkaKbng9m/TwO6LjxeeZ/3shWU6W/UzP1dE4LZV'
           'xrcLYnE+6AkHXkDpYrjZ3u5Rq+CcCGhdSkRq7buPTexMSBppS4OzJDPKglB+bHFr6oPm21ZVm6f2ruzu/s620ORFG0d3t0OWyk6t'
           'WVnr5crNxV99KZC4R948tNBC7VZlxDqQvrsli1umtqcTrXTpPVkFwJQRAWqFMQLa+LdV1uRlqu213hKuBZAcLfREbrDqXzouMtyH'
           '+6QmKPZ6Xyk8WsjfbMJoxkYvbbugiOj8xF2T8UUr3IMxjCMU5ex0KOlvEtyYTSIFM/2gF4Ucr5zUxZ1r alice@test')


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"]["Message"]
    return None, None


def wait(what, probe, timeout=60):
    deadline = time.time() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def both(action, name, match, miss, count, key, **kw):
    """Filter `name` with `match` finds `count` items, with `miss` none."""
    got = action(Filters=[{"Name": name, "Values": match}], **kw)[key]
    assert len(got) == count, f"{action.__name__} {name}={match}: {len(got)} != {count}: {got}"
    got = action(Filters=[{"Name": name, "Values": miss}], **kw)[key]
    assert len(got) == 0, f"{action.__name__} {name}={miss}: {got}"
    OUT["checked"].append(f"{action.__name__}:{name}")


def refused(action, **kw):
    code, msg = code_of(action, Filters=[{"Name": "no-such-filter", "Values": ["x"]}], **kw)
    assert code == "InvalidParameterValue" and "'no-such-filter'" in msg, (action.__name__, code, msg)
    OUT["checked"].append(f"{action.__name__}:unknown")


def instances(**kw):
    return [i for r in C.describe_instances(**kw)["Reservations"] for i in r["Instances"]]


def di(**kw):
    return {"Instances": instances(**kw)}


di.__name__ = "describe_instances"


def pages(action, key, max_results, **kw):
    out, token, n = [], None, 0
    while True:
        args = dict(kw, MaxResults=max_results)
        if token:
            args["NextToken"] = token
        r = action(**args)
        assert len(r[key]) <= max_results, r
        out.extend(r[key])
        n += 1
        token = r.get("NextToken")
        if not token:
            return out, n


# ---------------------------------------------------------------- key pairs
kp = C.create_key_pair(KeyName=f"fk-{REGION}",
                       TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "team", "Value": "blue"}]}])
assert kp["KeyPairId"].startswith("key-") and len(kp["KeyPairId"]) == 21, kp
assert {t["Key"]: t["Value"] for t in kp["Tags"]} == {"team": "blue"}, kp
imp = C.import_key_pair(KeyName=f"fk2-{REGION}", PublicKeyMaterial=RSA_PUB.encode(),
                        TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "Name", "Value": "imported"}]}])
assert imp["KeyPairId"].startswith("key-") and imp["KeyPairId"] != kp["KeyPairId"], imp
mine = [f"fk-{REGION}", f"fk2-{REGION}"]
pairs = {p["KeyName"]: p for p in C.describe_key_pairs(KeyNames=mine)["KeyPairs"]}
assert pairs[f"fk-{REGION}"]["KeyPairId"] == kp["KeyPairId"], pairs
assert pairs[f"fk-{REGION}"]["KeyType"] == "ed25519" and pairs[f"fk2-{REGION}"]["KeyType"] == "rsa", pairs
assert {t["Key"]: t["Value"] for t in pairs[f"fk2-{REGION}"]["Tags"]} == {"Name": "imported"}, pairs
assert [p["KeyName"] for p in C.describe_key_pairs(KeyPairIds=[imp["KeyPairId"]])["KeyPairs"]] == [f"fk2-{REGION}"]
dkp = C.describe_key_pairs
both(dkp, "key-pair-id", [kp["KeyPairId"]], ["key-0000000000000000a"], 1, "KeyPairs", KeyNames=mine)
both(dkp, "key-name", ["fk-*"], ["zz*"], 1, "KeyPairs", KeyNames=mine)
both(dkp, "fingerprint", [kp["KeyFingerprint"]], ["SHA256:nope"], 1, "KeyPairs", KeyNames=mine)
both(dkp, "key-type", ["rsa"], ["dsa"], 1, "KeyPairs", KeyNames=mine)
both(dkp, "tag:team", ["bl?e"], ["red"], 1, "KeyPairs", KeyNames=mine)
both(dkp, "tag-key", ["Name"], ["nope"], 1, "KeyPairs", KeyNames=mine)
both(dkp, "tag-value", ["imp*"], ["nope"], 1, "KeyPairs", KeyNames=mine)
refused(dkp)
OUT["unknown_key_pair_id"] = code_of(dkp, KeyPairIds=["key-0000000000000000a"])[0]
# Tags on a key pair by its id.
C.create_tags(Resources=[kp["KeyPairId"]], Tags=[{"Key": "owner", "Value": "alice"}])
tags = {t["Key"]: t["Value"] for t in dkp(KeyNames=[f"fk-{REGION}"])["KeyPairs"][0]["Tags"]}
assert tags == {"team": "blue", "owner": "alice"}, tags
C.delete_tags(Resources=[kp["KeyPairId"]], Tags=[{"Key": "owner"}])
tags = {t["Key"]: t["Value"] for t in dkp(KeyNames=[f"fk-{REGION}"])["KeyPairs"][0]["Tags"]}
assert tags == {"team": "blue"}, tags
OUT["tag_unknown_key_pair"] = code_of(C.create_tags, Resources=["key-0000000000000000a"], Tags=[{"Key": "a", "Value": "b"}])[0]

# ---------------------------------------------------------------- addresses
eip = C.allocate_address(Domain="vpc",
                         TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [{"Key": "team", "Value": "blue"}]}])
alloc = eip["AllocationId"]
da = C.describe_addresses
both(da, "tag:team", ["blue"], ["red"], 1, "Addresses")
both(da, "tag-key", ["te*"], ["nope"], 1, "Addresses")
both(da, "tag-value", ["blue"], ["nope"], 1, "Addresses")
both(da, "domain", ["vpc"], ["standard"], 1, "Addresses")
both(da, "public-ip", [eip["PublicIp"]], ["192.0.2.254"], 1, "Addresses")
both(da, "allocation-id", [alloc], ["eipalloc-00000000000000000"], 1, "Addresses")
both(da, "network-border-group", [REGION], ["nowhere"], 1, "Addresses")
refused(da)
C.create_tags(Resources=[alloc], Tags=[{"Key": "Name", "Value": "front"}])
addr = da(AllocationIds=[alloc])["Addresses"][0]
assert {t["Key"]: t["Value"] for t in addr["Tags"]} == {"team": "blue", "Name": "front"}, addr
C.delete_tags(Resources=[alloc], Tags=[{"Key": "team", "Value": "blue"}])
addr = da(AllocationIds=[alloc])["Addresses"][0]
assert {t["Key"]: t["Value"] for t in addr["Tags"]} == {"Name": "front"}, addr

# ---------------------------------------------------------------- instances
ami = next(i["ImageId"] for i in C.describe_images()["Images"] if i["Name"] == IMAGE)
blue = C.run_instances(ImageId=ami, MinCount=2, MaxCount=2, KeyName=f"fk-{REGION}", ClientToken=f"blue-{REGION}",
                       TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "blue"}]}])
green = C.run_instances(ImageId=ami, MinCount=3, MaxCount=3,
                        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "green"}]}])
raw = C.run_instances(ImageId=RAW_AMI, MinCount=1, MaxCount=1)
OUT["raw_image_id"] = raw["Instances"][0]["ImageId"]
blue_ids = [i["InstanceId"] for i in blue["Instances"]]
all_ids = blue_ids + [i["InstanceId"] for i in green["Instances"]] + [raw["Instances"][0]["InstanceId"]]
wait("running", lambda: all(i["State"]["Name"] == "running" for i in instances(InstanceIds=all_ids)))
OUT["raw_described"] = instances(InstanceIds=[all_ids[-1]])[0]["ImageId"]
b0 = instances(InstanceIds=[blue_ids[0]])[0]
kw = {"InstanceIds": all_ids}
both(di, "tag:team", ["blue"], ["red"], 2, "Instances", **kw)
both(di, "tag:team", ["bl*"], ["b?e"], 2, "Instances", **kw)
both(di, "tag-key", ["team"], ["nope"], 5, "Instances", **kw)
both(di, "tag-value", ["gr?en"], ["nope"], 3, "Instances", **kw)
both(di, "instance-id", [blue_ids[0]], ["i-00000000000000000"], 1, "Instances", **kw)
both(di, "instance-state-name", ["running"], ["stopped"], 6, "Instances", **kw)
both(di, "instance-state-code", ["16"], ["80"], 6, "Instances", **kw)
same_type = sum(1 for i in instances(InstanceIds=all_ids) if i["InstanceType"] == b0["InstanceType"])
both(di, "instance-type", [b0["InstanceType"]], ["x9.huge"], same_type, "Instances", **kw)
both(di, "availability-zone", [ZONE], ["nowhere-1a"], 6, "Instances", **kw)
both(di, "image-id", [ami], ["ami-00000000"], 5, "Instances", **kw)
both(di, "image-id", [RAW_AMI], ["ami-00000000"], 1, "Instances", **kw)
both(di, "key-name", [f"fk-{REGION}"], ["nope"], 2, "Instances", **kw)
both(di, "private-ip-address", [b0["PrivateIpAddress"]], ["192.0.2.1"], 1, "Instances", **kw)
if b0.get("PublicIpAddress"):
    both(di, "ip-address", [b0["PublicIpAddress"]], ["192.0.2.1"], 1, "Instances", **kw)
day = b0["LaunchTime"].strftime("%Y-%m-%dT*")
both(di, "launch-time", [day], ["1999-*"], 6, "Instances", **kw)
both(di, "reservation-id", [blue["ReservationId"]], ["r-00000000000000000"], 2, "Instances", **kw)
both(di, "client-token", [f"blue-{REGION}"], ["nope"], 2, "Instances", **kw)
both(di, "ami-launch-index", ["1"], ["7"], 2, "Instances", **kw)
both(di, "architecture", ["x86_64"], ["arm64"], 6, "Instances", **kw)
both(di, "root-device-type", ["ebs"], ["instance-store"], 6, "Instances", **kw)
both(di, "root-device-name", ["/dev/sda1"], ["/dev/xvda"], 6, "Instances", **kw)
both(di, "tenancy", ["default"], ["dedicated"], 6, "Instances", **kw)
both(di, "monitoring-state", ["disabled"], ["enabled"], 6, "Instances", **kw)
refused(di)
# Fields.
assert b0["RootDeviceName"] == "/dev/sda1" and b0["RootDeviceType"] == "ebs", b0
assert b0["Placement"]["AvailabilityZone"] == ZONE, b0

# ---------------------------------------------------------------- volumes
vols = [C.create_volume(Size=1 + (n % 2), AvailabilityZone=VZONE,
                        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "n", "Value": str(n)}]}])["VolumeId"]
        for n in range(6)]
wait("available", lambda: all(v["State"] == "available" for v in C.describe_volumes(VolumeIds=vols)["Volumes"]))
C.attach_volume(VolumeId=vols[0], InstanceId=blue_ids[0], Device="/dev/sdf")
wait("attached", lambda: C.describe_volumes(VolumeIds=[vols[0]])["Volumes"][0]["Attachments"][0]["State"] == "attached")
b0 = instances(InstanceIds=[blue_ids[0]])[0]
bdm = b0["BlockDeviceMappings"]
# The root volume its launch made comes first (issue 22: recorded at launch); then the volumes attached since.
root = [m for m in bdm if m["DeviceName"] == b0["RootDeviceName"]]
assert [(m["Ebs"]["VolumeId"].startswith("vol-"), m["Ebs"]["DeleteOnTermination"]) for m in root] == [(True, True)], bdm
bdm = [m for m in bdm if m["DeviceName"] != b0["RootDeviceName"]]
assert [(m["DeviceName"], m["Ebs"]["VolumeId"], m["Ebs"]["Status"], m["Ebs"]["DeleteOnTermination"]) for m in bdm] \
    == [("/dev/sdf", vols[0], "attached", False)], bdm
assert bdm[0]["Ebs"]["AttachTime"].year >= 2020, bdm
OUT["block_devices"] = [m["DeviceName"] for m in bdm]
assert [m["DeviceName"] for m in instances(InstanceIds=[blue_ids[1]])[0]["BlockDeviceMappings"]] == ["/dev/sda1"]
dv = C.describe_volumes
kw = {"VolumeIds": vols}
att = dv(VolumeIds=[vols[0]])["Volumes"][0]["Attachments"][0]
assert att["AttachTime"].year >= 2020, att
both(dv, "volume-id", [vols[1]], ["vol-00000000000000000"], 1, "Volumes", **kw)
both(dv, "status", ["available"], ["deleting"], 5, "Volumes", **kw)
both(dv, "size", ["2"], ["9"], 3, "Volumes", **kw)
both(dv, "attachment.instance-id", [blue_ids[0]], ["i-00000000000000000"], 1, "Volumes", **kw)
both(dv, "attachment.device", ["/dev/sd?"], ["/dev/xvdz"], 1, "Volumes", **kw)
both(dv, "attachment.status", ["attached"], ["detaching"], 1, "Volumes", **kw)
both(dv, "attachment.attach-time", ["2*"], ["1999-*"], 1, "Volumes", **kw)
both(dv, "attachment.delete-on-termination", ["false"], ["true"], 1, "Volumes", **kw)
both(dv, "availability-zone", [VZONE], ["nowhere-1a"], 6, "Volumes", **kw)
vtype = dv(VolumeIds=[vols[0]])["Volumes"][0]["VolumeType"]
both(dv, "volume-type", [vtype], ["io9"], 6, "Volumes", **kw)
both(dv, "create-time", ["2*"], ["1999-*"], 6, "Volumes", **kw)
both(dv, "encrypted", ["false"], ["true"], 6, "Volumes", **kw)
both(dv, "multi-attach-enabled", ["false"], ["true"], 6, "Volumes", **kw)
both(dv, "tag:n", ["3"], ["33"], 1, "Volumes", **kw)
both(dv, "tag-key", ["n"], ["m"], 6, "Volumes", **kw)
both(dv, "tag-value", ["[0-9]", "4", "5"], ["nope"], 2, "Volumes", **kw)
refused(dv)
got, n = pages(dv, "Volumes", 5, Filters=[{"Name": "tag-key", "Values": ["n"]}])
assert sorted(v["VolumeId"] for v in got) == sorted(vols) and n == 2, (got, n)
OUT["volume_pages"] = n
OUT["volumes_bad_max"] = code_of(dv, MaxResults=4)[0]
OUT["volumes_big_max"] = code_of(dv, MaxResults=501)[0]
OUT["volumes_bad_token"] = code_of(dv, MaxResults=5, NextToken="forged")[0]
OUT["volumes_max_with_ids"] = code_of(dv, MaxResults=5, VolumeIds=vols)[0]

# ---------------------------------------------------------------- instance status
ds = C.describe_instance_status
kw = {"IncludeAllInstances": True, "InstanceIds": all_ids}
both(ds, "instance-state-name", ["running"], ["stopped"], 6, "InstanceStatuses", **kw)
both(ds, "instance-state-code", ["16"], ["48"], 6, "InstanceStatuses", **kw)
both(ds, "availability-zone", [ZONE], ["nowhere-1a"], 6, "InstanceStatuses", **kw)
both(ds, "instance-status.status", ["ok"], ["impaired"], 6, "InstanceStatuses", **kw)
both(ds, "system-status.status", ["ok"], ["impaired"], 6, "InstanceStatuses", **kw)
both(ds, "instance-status.reachability", ["passed"], ["failed"], 6, "InstanceStatuses", **kw)
both(ds, "system-status.reachability", ["passed"], ["failed"], 6, "InstanceStatuses", **kw)
refused(ds)
got, n = pages(ds, "InstanceStatuses", 5, IncludeAllInstances=True)
assert sorted(s["InstanceId"] for s in got) == sorted(all_ids) and n == 2, (got, n)
OUT["status_pages"] = n
OUT["status_bad_max"] = code_of(ds, MaxResults=3)[0]
OUT["status_max_with_ids"] = code_of(ds, MaxResults=5, InstanceIds=all_ids)[0]

# ---------------------------------------------------------------- tags
dt = C.describe_tags
both(dt, "resource-type", ["key-pair"], ["image"], 2, "Tags",)
both(dt, "resource-type", ["elastic-ip"], ["image"], 1, "Tags")
both(dt, "resource-id", [kp["KeyPairId"]], ["key-0000000000000000a"], 1, "Tags")
both(dt, "key", ["te?m"], ["nope"], 6, "Tags")
both(dt, "value", ["green"], ["nope"], 3, "Tags")
both(dt, "tag:team", ["blue"], ["red"], 3, "Tags")
refused(dt)
everything = dt()["Tags"]
got, n = pages(dt, "Tags", 5)
assert got == everything and n == (len(everything) + 4) // 5, (len(got), len(everything), n)
OUT["tag_pages"] = n
OUT["tags_bad_max"] = code_of(dt, MaxResults=4)[0]

# ---------------------------------------------------------------- regions, zones, types
dr = C.describe_regions
both(dr, "region-name", [REGION], ["nowhere"], 1, "Regions")
both(dr, "endpoint", ["*/ec2"], ["nowhere"], 1, "Regions", RegionNames=[REGION])
both(dr, "opt-in-status", ["opt-in-not-required"], ["not-opted-in"], 1, "Regions", RegionNames=[REGION])
refused(dr)
dz = C.describe_availability_zones
zone = dz()["AvailabilityZones"][0]
OUT["zone"] = [zone["ZoneName"], zone["ZoneId"]]
both(dz, "zone-name", [ZONE], ["nowhere-1a"], 1, "AvailabilityZones")
both(dz, "zone-id", [zone["ZoneId"]], ["use9-az9"], 1, "AvailabilityZones")
both(dz, "state", ["available"], ["impaired"], 1, "AvailabilityZones")
both(dz, "region-name", [REGION], ["nowhere"], 1, "AvailabilityZones")
both(dz, "zone-type", ["availability-zone"], ["local-zone"], 1, "AvailabilityZones")
refused(dz)
dit = C.describe_instance_types
t = dit(InstanceTypes=[b0["InstanceType"]])["InstanceTypes"][0]
both(dit, "instance-type", [b0["InstanceType"]], ["x9.huge"], 1, "InstanceTypes")
both(dit, "vcpu-info.default-vcpus", [str(t["VCpuInfo"]["DefaultVCpus"])], ["999"], 1, "InstanceTypes",
     InstanceTypes=[b0["InstanceType"]])
both(dit, "memory-info.size-in-mib", [str(t["MemoryInfo"]["SizeInMiB"])], ["1"], 1, "InstanceTypes",
     InstanceTypes=[b0["InstanceType"]])
both(dit, "current-generation", ["true"], ["false"], 1, "InstanceTypes", InstanceTypes=[b0["InstanceType"]])
refused(dit)
every = dit()["InstanceTypes"]
got, n = pages(dit, "InstanceTypes", 5 if len(every) <= 50 else 100)
assert n == (len(every) + (4 if len(every) <= 50 else 99)) // (5 if len(every) <= 50 else 100), (n, len(every))
assert got == every, (len(got), len(every))
OUT["types_bad_max"] = code_of(dit, MaxResults=101)[0]

# ---------------------------------------------------------------- images
dim = C.describe_images
for name, match, miss in [("name", IMAGE, "nope"), ("image-id", ami, "ami-00000000"), ("state", "available", "failed"),
                          ("is-public", "true", "false"), ("architecture", "x86_64", "arm64"),
                          ("image-type", "machine", "kernel"), ("root-device-type", "ebs", "instance-store"),
                          ("virtualization-type", "hvm", "paravirtual"), ("owner-alias", "cloudbroker", "amazon-x")]:
    both(dim, name, [match], [miss], 1, "Images")
refused(dim)
got, n = pages(dim, "Images", 5)
assert [i["ImageId"] for i in got] == [ami] and n == 1, got
OUT["images_bad_max"] = code_of(dim, MaxResults=4)[0]

# ---------------------------------------------------------------- clean up
C.terminate_instances(InstanceIds=all_ids)
C.release_address(AllocationId=alloc)
for name in mine:
    C.delete_key_pair(KeyName=name)
print(json.dumps(OUT))
