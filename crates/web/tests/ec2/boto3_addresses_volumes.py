"""Elastic IPs and volumes through the EC2 front-end, driven by boto3.

Run by crates/web/tests/ec2.rs with EP (the /ec2 endpoint), ALICE_AK/ALICE_SK,
BOB_AK/BOB_SK and REGIONS ("region=zone,..."): for each region (a sandbox
instance and an ec2 instance backed by moto) alice allocates, associates,
disassociates and releases an address, and creates, attaches, detaches and
deletes a volume; bob sees nothing of hers and gets EC2's NotFound codes on
every action. In the STRICT regions (the sandbox, which enforces EC2's rules
where moto does not) releasing an associated address and deleting an
attached volume are refused. Asserts as it goes; prints a JSON summary the Rust test checks.
"""
import json
import os
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["EP"]
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


def client(ak, sk, region):
    return boto3.client("ec2", endpoint_url=EP, region_name=region, aws_access_key_id=ak,
                        aws_secret_access_key=sk, config=NO_RETRY)


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
        time.sleep(0.2)


def running(c, iid):
    def probe():
        r = c.describe_instances(InstanceIds=[iid])["Reservations"]
        return r[0]["Instances"][0]["State"]["Name"] == "running"
    wait(f"{iid} running", probe)


def launch(c, image_name):
    ami = next(i["ImageId"] for i in c.describe_images()["Images"] if i["Name"] == image_name)
    iid = c.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    running(c, iid)
    return iid


def volume(c, vid):
    return c.describe_volumes(VolumeIds=[vid])["Volumes"][0]


def addresses(alice, bob, vm, bob_vm, strict):
    out = {}
    a = alice.allocate_address(Domain="vpc")
    alloc, ip = a["AllocationId"], a["PublicIp"]
    assert alloc.startswith("eipalloc-") and ip, a
    listed = alice.describe_addresses()["Addresses"]
    assert [x["AllocationId"] for x in listed] == [alloc], listed
    assert "InstanceId" not in listed[0], listed
    assoc = alice.associate_address(AllocationId=alloc, InstanceId=vm)["AssociationId"]
    assert assoc.startswith("eipassoc-"), assoc
    d = alice.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
    out["associated"] = [d["InstanceId"] == vm, d["AssociationId"] == assoc, d["PublicIp"] == ip]
    out["filter_instance"] = len(alice.describe_addresses(Filters=[{"Name": "instance-id", "Values": [vm]}])["Addresses"])
    out["filter_other_ip"] = len(alice.describe_addresses(Filters=[{"Name": "public-ip", "Values": ["192.0.2.1"]}])["Addresses"])
    out["filter_public_ip"] = len(alice.describe_addresses(PublicIps=[ip])["Addresses"])
    # The instance's public address is the Elastic IP now.
    inst = alice.describe_instances(InstanceIds=[vm])["Reservations"][0]["Instances"][0]
    out["instance_ip"] = inst.get("PublicIpAddress") == ip
    # Bob: nothing of alice's exists.
    out["bob_list"] = bob.describe_addresses()["Addresses"]
    out["bob_describe"] = code_of(bob.describe_addresses, AllocationIds=[alloc])
    out["bob_associate"] = code_of(bob.associate_address, AllocationId=alloc, InstanceId=bob_vm)
    out["bob_disassociate"] = code_of(bob.disassociate_address, AssociationId=assoc)
    out["bob_release"] = code_of(bob.release_address, AllocationId=alloc)
    b = bob.allocate_address(Domain="vpc")["AllocationId"]
    out["bob_to_alice_vm"] = code_of(bob.associate_address, AllocationId=b, InstanceId=vm)
    bob.release_address(AllocationId=b)
    # Bad input, named.
    out["missing_allocation"] = code_of(alice.associate_address, InstanceId=vm)
    out["malformed"] = code_of(alice.describe_addresses, AllocationIds=["bogus"])
    if strict:
        out["release_in_use"] = code_of(alice.release_address, AllocationId=alloc)
    alice.disassociate_address(AssociationId=assoc)
    d = alice.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
    out["disassociated"] = "InstanceId" not in d and "AssociationId" not in d
    alice.release_address(AllocationId=alloc)
    out["after_release"] = alice.describe_addresses()["Addresses"]
    out["released_again"] = code_of(alice.release_address, AllocationId=alloc)
    return out


def volumes(alice, bob, vm, bob_vm, zone, strict):
    out = {}
    spec = [{"ResourceType": "volume", "Tags": [{"Key": "team", "Value": "a"}]}]
    v = alice.create_volume(Size=2, AvailabilityZone=zone, VolumeType="gp2", TagSpecifications=spec)
    vid = v["VolumeId"]
    assert vid.startswith("vol-") and v["Size"] == 2 and v["AvailabilityZone"] == zone, v
    out["created_state"] = v["State"] in ("creating", "available")
    wait("available", lambda: volume(alice, vid)["State"] == "available")
    out["tags"] = {t["Key"]: t["Value"] for t in volume(alice, vid).get("Tags", [])}
    out["too_big"] = code_of(alice.create_volume, Size=16385, AvailabilityZone=zone)
    out["malformed"] = code_of(alice.describe_volumes, VolumeIds=["bogus"])
    # Bob: nothing of alice's exists.
    out["bob_list"] = bob.describe_volumes()["Volumes"]
    out["bob_describe"] = code_of(bob.describe_volumes, VolumeIds=[vid])
    out["bob_attach"] = code_of(bob.attach_volume, VolumeId=vid, InstanceId=bob_vm, Device="/dev/sdf")
    out["bob_detach"] = code_of(bob.detach_volume, VolumeId=vid)
    out["bob_delete"] = code_of(bob.delete_volume, VolumeId=vid)
    out["bob_tag"] = code_of(bob.create_tags, Resources=[vid], Tags=[{"Key": "x", "Value": "y"}])
    bv = bob.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    out["bob_to_alice_vm"] = code_of(bob.attach_volume, VolumeId=bv, InstanceId=vm, Device="/dev/sdg")
    wait("bob's volume available", lambda: volume(bob, bv)["State"] == "available")
    bob.delete_volume(VolumeId=bv)
    # Attach, see it attached, detach, delete.
    a = alice.attach_volume(VolumeId=vid, InstanceId=vm, Device="/dev/sdf")
    out["attach_answer"] = [a["VolumeId"] == vid, a["InstanceId"] == vm, a["Device"] == "/dev/sdf", a["State"] in ("attaching", "attached")]
    att = wait("attached", lambda: [x for x in volume(alice, vid)["Attachments"] if x["State"] == "attached"])
    out["attached"] = [att[0]["InstanceId"] == vm, att[0]["Device"] == "/dev/sdf", volume(alice, vid)["State"] == "in-use"]
    out["filter_attached"] = [x["VolumeId"] for x in alice.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [vm]}])["Volumes"]] == [vid]
    out["filter_available"] = len(alice.describe_volumes(Filters=[{"Name": "status", "Values": ["available"]}])["Volumes"])
    if strict:
        out["delete_in_use"] = code_of(alice.delete_volume, VolumeId=vid)
    alice.create_tags(Resources=[vid], Tags=[{"Key": "env", "Value": "dev"}])
    tags = alice.describe_tags(Filters=[{"Name": "resource-id", "Values": [vid]}])["Tags"]
    out["described_tags"] = sorted(f'{t["Key"]}={t["Value"]}:{t["ResourceType"]}' for t in tags)
    alice.delete_tags(Resources=[vid], Tags=[{"Key": "team"}])
    out["tags_after_delete"] = sorted(t["Key"] for t in volume(alice, vid).get("Tags", []))
    alice.detach_volume(VolumeId=vid, InstanceId=vm)
    wait("detached", lambda: volume(alice, vid)["State"] == "available" and not volume(alice, vid)["Attachments"])
    alice.delete_volume(VolumeId=vid)
    out["after_delete"] = alice.describe_volumes()["Volumes"]
    out["deleted_describe"] = code_of(alice.describe_volumes, VolumeIds=[vid])
    return out


summary = {}
for entry in os.environ["REGIONS"].split(","):
    region, zone, image = entry.split("=")
    alice = client(os.environ["ALICE_AK"], os.environ["ALICE_SK"], region)
    bob = client(os.environ["BOB_AK"], os.environ["BOB_SK"], region)
    vm = launch(alice, image)
    bob_vm = launch(bob, image)
    strict = region in os.environ.get("STRICT", "").split(",")
    summary[region] = {"addresses": addresses(alice, bob, vm, bob_vm, strict),
                       "volumes": volumes(alice, bob, vm, bob_vm, zone, strict)}
    alice.terminate_instances(InstanceIds=[vm])
    bob.terminate_instances(InstanceIds=[bob_vm])
print(json.dumps(summary))
