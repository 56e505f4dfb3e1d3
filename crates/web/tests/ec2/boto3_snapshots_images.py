"""Snapshots and images made from instances through the EC2 front-end, driven by boto3.

Run by crates/web/tests/ec2_snapshots_images.rs with EP (the /ec2 endpoint),
ALICE_*/BOB_*/CAROL_* keys and REGIONS ("region=zone=image,..."): for each
region (a sandbox instance and an ec2 instance backed by moto) alice
snapshots a volume, makes a volume from the snapshot (its size by default),
makes an image of her instance and launches it, shares it with bob, who
then sees and launches it while carol does not, and deregisters it; bob
sees none of alice's snapshots. In the STRICT regions (the sandbox, which
enforces EC2's rules where moto does not) a volume smaller than its
snapshot is refused. Asserts as it goes; prints a JSON summary the Rust
test checks.
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


def client(who, region):
    c = boto3.client("ec2", endpoint_url=EP, region_name=region, aws_access_key_id=os.environ[f"{who}_AK"],
                     aws_secret_access_key=os.environ[f"{who}_SK"], config=NO_RETRY)
    # boto3 fills CreateVolume's ClientToken itself; not asked for here
    # (tokens are tested in boto3_params.py).
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
        time.sleep(0.1)


def running(c, iid):
    def probe():
        r = c.describe_instances(InstanceIds=[iid])["Reservations"]
        return r[0]["Instances"][0]["State"]["Name"] == "running"
    wait(f"{iid} running", probe)


def launch(c, ami):
    iid = c.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    running(c, iid)
    return iid


def region_run(region, zone, image_name, strict):
    alice, bob, carol = client("ALICE", region), client("BOB", region), client("CAROL", region)
    out = {}
    base = next(i["ImageId"] for i in alice.describe_images()["Images"] if i["Name"] == image_name)
    vm = launch(alice, base)

    # Snapshots.
    vol = alice.create_volume(Size=2, AvailabilityZone=zone)["VolumeId"]
    wait("volume available", lambda: alice.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] == "available")
    s = alice.create_snapshot(VolumeId=vol, Description="first",
                              TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "team", "Value": "s1"}]}])
    sid = s["SnapshotId"]
    out["created"] = [sid.startswith("snap-"), s["VolumeId"] == vol, s["VolumeSize"] == 2, s["Description"] == "first",
                      s["State"] in ("pending", "completed")]
    done = wait("snapshot completed",
                lambda: next((x for x in alice.describe_snapshots(SnapshotIds=[sid])["Snapshots"] if x["State"] == "completed"), None))
    out["completed"] = [done["Progress"] == "100%", {t["Key"]: t["Value"] for t in done.get("Tags", [])} == {"team": "s1"}]
    own = alice.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    out["own"] = [x["SnapshotId"] for x in own] == [sid]
    f = lambda name, vals: len(alice.describe_snapshots(Filters=[{"Name": name, "Values": vals}])["Snapshots"])
    out["filters"] = [f("volume-id", [vol]), f("tag:team", ["s1"]), f("status", ["completed"]), f("status", ["pending"]),
                      f("description", ["fir*"])]
    out["bad_filter"] = code_of(alice.describe_snapshots, Filters=[{"Name": "colour", "Values": ["x"]}])
    out["malformed"] = code_of(alice.describe_snapshots, SnapshotIds=["snap-1"])
    out["unknown"] = code_of(alice.describe_snapshots, SnapshotIds=["snap-0123456789abcdef0"])
    out["unknown_volume"] = code_of(alice.create_snapshot, VolumeId="vol-0123456789abcdef0")
    v2 = alice.create_volume(SnapshotId=sid, AvailabilityZone=zone)
    out["from_snapshot_size"] = v2["Size"]
    if strict:
        out["too_small"] = code_of(alice.create_volume, SnapshotId=sid, Size=1, AvailabilityZone=zone)
    out["bob_list"] = bob.describe_snapshots()["Snapshots"]
    out["bob_describe"] = code_of(bob.describe_snapshots, SnapshotIds=[sid])
    out["bob_delete"] = code_of(bob.delete_snapshot, SnapshotId=sid)
    out["bob_volume"] = code_of(bob.create_volume, SnapshotId=sid, AvailabilityZone=zone)

    # Images from instances.
    name = f"alice-img-{region}"
    ami = alice.create_image(InstanceId=vm, Name=name, Description="made from a VM", NoReboot=True)["ImageId"]
    mine = alice.describe_images(Owners=["self"])["Images"]
    out["own_images"] = [i["Name"] for i in mine if i["ImageId"] == ami]
    out["duplicate"] = code_of(alice.create_image, InstanceId=vm, Name=name)
    out["bob_before"] = code_of(bob.describe_images, ImageIds=[ami])
    out["bob_run_before"] = code_of(bob.run_instances, ImageId=ami, MinCount=1, MaxCount=1)
    out["bob_share"] = code_of(bob.modify_image_attribute, ImageId=ami, LaunchPermission={"Add": [{"UserId": "bob"}]})
    alice.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"UserId": "bob"}]})
    perms = alice.describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"]
    out["permissions"] = perms
    out["group_all"] = code_of(alice.modify_image_attribute, ImageId=ami, LaunchPermission={"Add": [{"Group": "all"}]})
    out["unknown_user"] = code_of(alice.modify_image_attribute, ImageId=ami, LaunchPermission={"Add": [{"UserId": "nobody"}]})
    out["bad_attribute"] = code_of(alice.describe_image_attribute, ImageId=ami, Attribute="colour")
    out["bob_sees"] = [i["Name"] for i in bob.describe_images(ImageIds=[ami])["Images"]]
    bob_vm = launch(bob, ami)
    out["bob_launched"] = bob.describe_instances(InstanceIds=[bob_vm])["Reservations"][0]["Instances"][0]["ImageId"] == ami
    out["bob_deregister"] = code_of(bob.deregister_image, ImageId=ami)
    out["bob_attribute"] = code_of(bob.describe_image_attribute, ImageId=ami, Attribute="launchPermission")
    out["carol_describe"] = code_of(carol.describe_images, ImageIds=[ami])
    out["carol_run"] = code_of(carol.run_instances, ImageId=ami, MinCount=1, MaxCount=1)
    alice_vm2 = launch(alice, ami)
    alice.modify_image_attribute(ImageId=ami, Attribute="launchPermission", OperationType="remove", UserIds=["bob"])
    out["after_remove"] = alice.describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"]
    out["bob_after_remove"] = code_of(bob.describe_images, ImageIds=[ami])

    # Clean up.
    bob.terminate_instances(InstanceIds=[bob_vm])
    alice.terminate_instances(InstanceIds=[vm, alice_vm2])
    alice.deregister_image(ImageId=ami)
    out["deregistered"] = code_of(alice.describe_images, ImageIds=[ami])
    alice.delete_snapshot(SnapshotId=sid)
    out["deleted"] = code_of(alice.describe_snapshots, SnapshotIds=[sid])
    out["deleted_again"] = code_of(alice.delete_snapshot, SnapshotId=sid)
    for v in (vol, v2["VolumeId"]):
        wait("volume available", lambda: alice.describe_volumes(VolumeIds=[v])["Volumes"][0]["State"] == "available")
        alice.delete_volume(VolumeId=v)
    return out


def main():
    strict = set(os.environ.get("STRICT", "").split(","))
    summary = {}
    for spec in os.environ["REGIONS"].split(","):
        region, zone, image = spec.split("=")
        summary[region] = region_run(region, zone, image, region in strict)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
