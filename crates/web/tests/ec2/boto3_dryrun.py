"""DryRun through the EC2 front-end, driven by boto3 (botocore sends what
`aws ec2 ... --dry-run` sends: DryRun=true).

Run by crates/web/tests/review2_dryrun.rs with EP (the broker's /ec2), MOTO
(moto's endpoint, the cloud behind region `aws`), BASE and ADMIN_TOKEN (the
broker's JSON API, for its audit log), ALICE_AK/ALICE_SK, BOB_AK/BOB_SK and
the mode as argv[1]: instances, tags_keys, resources or images. Each mode
makes a few real resources, snapshots the broker (its EC2 listings and its
audit log) and moto (its own Describe* calls and the non-Describe actions it
has served), makes every dry run of its actions (each must answer 412
DryRunOperation with AWS's message) and the dry runs that must fail with the
real error, then snapshots again: both snapshots must be equal. Prints a JSON
summary (the error codes seen) that the Rust test checks.
"""
import json
import os
import sys
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP, MOTO = os.environ["EP"], os.environ["MOTO"]
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})
MESSAGE = "Request would have succeeded, but DryRun flag is set."
ZONE = "us-east-1a"


def client(ak, sk, endpoint=EP, region="aws"):
    return boto3.client("ec2", endpoint_url=endpoint, region_name=region, aws_access_key_id=ak,
                        aws_secret_access_key=sk, config=NO_RETRY)


alice = client(os.environ["ALICE_AK"], os.environ["ALICE_SK"])
bob = client(os.environ["BOB_AK"], os.environ["BOB_SK"])
moto = client("AKIAALICEMOTO000001", "alice-moto-secret", MOTO, "us-east-1")
out = {"dry_runs": 0}


def dry(fn, **kw):
    """(code, HTTP status, message) of fn with DryRun=True; it must fail."""
    try:
        fn(DryRun=True, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Message"]
    raise AssertionError(f"{fn.__name__}({kw}) with DryRun=True succeeded")


def expect_dry(fn, **kw):
    got = dry(fn, **kw)
    assert got == ("DryRunOperation", 412, MESSAGE), f"{fn.__name__}({kw}): {got}"
    out["dry_runs"] += 1


def code(name, fn, **kw):
    out[name] = dry(fn, **kw)[0]


def get_json(url, token):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def tags(items):
    return sorted((t["Key"], t["Value"]) for t in items or [])


def snapshot():
    """What the broker and moto hold, and what moto was asked to change."""
    b_inst = sorted((i["InstanceId"], i["State"]["Name"], tags(i.get("Tags")))
                    for r in alice.describe_instances()["Reservations"] for i in r["Instances"])
    m_inst = sorted((i["InstanceId"], i["State"]["Name"], tags(i.get("Tags")))
                    for r in moto.describe_instances()["Reservations"] for i in r["Instances"])
    b_vol = sorted((v["VolumeId"], v["State"], [(a["InstanceId"], a["Device"]) for a in v["Attachments"]], tags(v.get("Tags")))
                   for v in alice.describe_volumes()["Volumes"])
    m_vol = sorted((v["VolumeId"], v["State"], [(a["InstanceId"], a["Device"]) for a in v["Attachments"]], tags(v.get("Tags")))
                   for v in moto.describe_volumes()["Volumes"])
    b_addr = sorted((a["AllocationId"], a.get("InstanceId"), a.get("AssociationId")) for a in alice.describe_addresses()["Addresses"])
    m_addr = sorted((a["AllocationId"], a.get("InstanceId"), a.get("AssociationId")) for a in moto.describe_addresses()["Addresses"])
    keys = sorted(k["KeyName"] for k in alice.describe_key_pairs()["KeyPairs"])
    m_keys = sorted(k["KeyName"] for k in moto.describe_key_pairs()["KeyPairs"])
    images = sorted(i["Name"] for i in alice.describe_images()["Images"])
    audit = get_json(f"{os.environ['BASE']}/api/v1/audit?limit=1000", os.environ["ADMIN_TOKEN"])["entries"]
    with urllib.request.urlopen(f"{MOTO}/_fault/stats") as r:
        changes = {k: v for k, v in json.loads(r.read())["actions"].items() if not k.startswith("Describe")}
    return {"broker": [b_inst, b_vol, b_addr, keys, images, len(audit)],
            "moto": [m_inst, m_vol, m_addr, m_keys], "moto_changes": changes}


def ami(name):
    return next(i["ImageId"] for i in alice.describe_images()["Images"] if i["Name"] == name)


def launch(**kw):
    return alice.run_instances(ImageId=ami("moto-linux"), MinCount=1, MaxCount=1, **kw)["Instances"][0]["InstanceId"]


def instances():
    iid = launch()
    before = snapshot()
    assert before["broker"][0] and before["moto"][0], before
    # Quota 2 (set by the test), 1 used: MaxCount 2 with MinCount 1 would be admitted.
    expect_dry(alice.run_instances, ImageId=ami("moto-linux"), MinCount=1, MaxCount=2)
    expect_dry(alice.run_instances, ImageId=ami("moto-linux"), MinCount=1, MaxCount=1, InstanceType="t3.micro",
               TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "a"}]}])
    for fn in (alice.start_instances, alice.stop_instances, alice.reboot_instances, alice.terminate_instances):
        expect_dry(fn, InstanceIds=[iid])
    expect_dry(alice.describe_instances)
    expect_dry(alice.describe_instances, InstanceIds=[iid])
    expect_dry(alice.describe_instance_status, IncludeAllInstances=True)
    code("run_over_quota", alice.run_instances, ImageId=ami("moto-linux"), MinCount=2, MaxCount=2)
    code("run_bad_ami", alice.run_instances, ImageId="ami-0000000000000000", MinCount=1, MaxCount=1)
    code("run_unknown_key", alice.run_instances, ImageId=ami("moto-linux"), MinCount=1, MaxCount=1, KeyName="nope")
    code("terminate_unknown", alice.terminate_instances, InstanceIds=["i-0123456789abcdef"])
    code("terminate_partly_unknown", alice.terminate_instances, InstanceIds=[iid, "i-0123456789abcdef"])
    code("bob_terminate", bob.terminate_instances, InstanceIds=[iid])
    code("bob_stop", bob.stop_instances, InstanceIds=[iid])
    code("describe_unknown", alice.describe_instances, InstanceIds=["i-0123456789abcdef"])
    after = snapshot()
    assert before == after, f"a dry run changed something:\n{before}\n{after}"
    # DryRun=False is a real call.
    out["terminated"] = alice.terminate_instances(InstanceIds=[iid], DryRun=False)["TerminatingInstances"][0]["InstanceId"] == iid
    out["moto_states"] = sorted(i["State"]["Name"] for r in moto.describe_instances()["Reservations"] for i in r["Instances"])


def tags_keys():
    iid = launch(TagSpecifications=[{"ResourceType": "instance", "Tags": [
        {"Key": "team", "Value": "a"}, {"Key": "env", "Value": "prod"}, {"Key": "cloudbroker:upstream", "Value": "b1"}]}])
    vol = alice.create_volume(Size=1, AvailabilityZone=ZONE,
                              TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "disk", "Value": "d"}]}])["VolumeId"]
    alice.create_key_pair(KeyName="k1")
    public = alice.describe_key_pairs(KeyNames=["k1"])["KeyPairs"][0]["PublicKey"]
    before = snapshot()
    expect_dry(alice.create_tags, Resources=[iid, vol], Tags=[{"Key": "x", "Value": "y"}])
    expect_dry(alice.delete_tags, Resources=[iid, vol])
    expect_dry(alice.delete_tags, Resources=[iid], Tags=[{"Key": "team"}])
    expect_dry(alice.describe_tags)
    expect_dry(alice.create_key_pair, KeyName="k2")
    expect_dry(alice.import_key_pair, KeyName="k3", PublicKeyMaterial=public.encode())
    expect_dry(alice.delete_key_pair, KeyName="k1")
    expect_dry(alice.describe_key_pairs)
    code("bob_create_tags", bob.create_tags, Resources=[iid], Tags=[{"Key": "x", "Value": "y"}])
    code("bob_delete_tags", bob.delete_tags, Resources=[vol])
    code("reserved_tag", alice.create_tags, Resources=[iid], Tags=[{"Key": "aws:x", "Value": "y"}])
    code("reserved_delete", alice.delete_tags, Resources=[iid], Tags=[{"Key": "cloudbroker:upstream"}])
    code("duplicate_key", alice.create_key_pair, KeyName="k1")
    code("bad_key", alice.import_key_pair, KeyName="k4", PublicKeyMaterial=b"not a key")
    code("unknown_key_pair", alice.describe_key_pairs, KeyNames=["nope"])
    after = snapshot()
    assert before == after, f"a dry run changed something:\n{before}\n{after}"
    # DeleteTags without Tag.N removes the user's tags and leaves the reserved ones.
    alice.delete_tags(Resources=[iid, vol])
    inst = alice.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    out["instance_tags_left"] = tags(inst.get("Tags"))
    out["volume_tags_left"] = tags(alice.describe_volumes(VolumeIds=[vol])["Volumes"][0].get("Tags"))
    cloud = [i for r in moto.describe_instances()["Reservations"] for i in r["Instances"]]
    out["cloud_user_tags_left"] = sorted(t["Key"] for i in cloud for t in i.get("Tags", []) if not t["Key"].startswith("cloudbroker:"))


def resources():
    iid = launch()
    a1 = alice.allocate_address(Domain="vpc")
    a2 = alice.allocate_address(Domain="vpc")
    assoc = alice.associate_address(AllocationId=a2["AllocationId"], InstanceId=iid)["AssociationId"]
    v1 = alice.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    v2 = alice.create_volume(Size=2, AvailabilityZone=ZONE)["VolumeId"]
    alice.attach_volume(VolumeId=v2, InstanceId=iid, Device="/dev/sdg")
    snapshot()  # volumes in transition settle on a first listing
    before = snapshot()
    # moto's volumes: alice's two and the instance's root volume.
    assert len(before["broker"][2]) == 2 and len(before["moto"][2]) == 2 and len(before["moto"][1]) == 3, before
    expect_dry(alice.allocate_address, Domain="vpc")
    expect_dry(alice.associate_address, AllocationId=a1["AllocationId"], InstanceId=iid)
    expect_dry(alice.disassociate_address, AssociationId=assoc)
    expect_dry(alice.release_address, AllocationId=a1["AllocationId"])
    expect_dry(alice.describe_addresses)
    expect_dry(alice.create_volume, Size=1, AvailabilityZone=ZONE, VolumeType="gp3")
    expect_dry(alice.attach_volume, VolumeId=v1, InstanceId=iid, Device="/dev/sdf")
    expect_dry(alice.detach_volume, VolumeId=v2)
    expect_dry(alice.delete_volume, VolumeId=v1)
    expect_dry(alice.describe_volumes)
    code("release_unknown", alice.release_address, AllocationId="eipalloc-0123456789abcdef0")
    code("bob_release", bob.release_address, AllocationId=a1["AllocationId"])
    code("bob_associate", bob.associate_address, AllocationId=a1["AllocationId"], InstanceId=iid)
    code("associate_unknown_instance", alice.associate_address, AllocationId=a1["AllocationId"], InstanceId="i-0123456789abcdef")
    code("disassociate_unassociated", alice.disassociate_address, PublicIp=a1["PublicIp"])
    code("bob_delete_volume", bob.delete_volume, VolumeId=v1)
    code("delete_unknown_volume", alice.delete_volume, VolumeId="vol-0123456789abcdef0")
    code("attach_bad_device", alice.attach_volume, VolumeId=v1, InstanceId=iid, Device="sdf")
    code("bob_attach", bob.attach_volume, VolumeId=v1, InstanceId=iid, Device="/dev/sdf")
    code("create_volume_bad_type", alice.create_volume, Size=1, AvailabilityZone=ZONE, VolumeType="g p3")
    after = snapshot()
    assert before == after, f"a dry run changed something:\n{before}\n{after}"


def images():
    alice.register_image(ImageLocation="ami-12c6146b", Name="mine")
    mine = ami("mine")
    before = snapshot()
    expect_dry(alice.register_image, ImageLocation="ami-12c6146b", Name="mine-too")
    expect_dry(alice.deregister_image, ImageId=mine)
    for fn in (alice.describe_images, alice.describe_regions, alice.describe_availability_zones,
               alice.describe_account_attributes, alice.describe_instance_types):
        expect_dry(fn)
    code("register_duplicate", alice.register_image, ImageLocation="ami-12c6146b", Name="mine")
    code("register_unknown", alice.register_image, ImageLocation="ami-0000000000000000", Name="nothing")
    code("deregister_public", alice.deregister_image, ImageId=ami("moto-linux"))
    code("bob_deregister", bob.deregister_image, ImageId=mine)
    code("describe_unknown_image", alice.describe_images, ImageIds=["ami-0000000000000000"])
    after = snapshot()
    assert before == after, f"a dry run changed something:\n{before}\n{after}"
    out["regions"] = [r["RegionName"] for r in alice.describe_regions(DryRun=False)["Regions"]]


{"instances": instances, "tags_keys": tags_keys, "resources": resources, "images": images}[sys.argv[1]]()
print(json.dumps(out))
