"""Instance attributes, console output, instance type offerings, and the
reconciler for addresses and volumes, through the EC2 front-end with boto3.

Run by crates/web/tests/ec2_attributes.rs with EP (the /ec2 endpoint),
ALICE_AK/ALICE_SK, BOB_AK/BOB_SK and REGIONS ("region=zone=image,..."): for
each region (a sandbox instance, an ec2 instance in front of moto) alice
reads and changes her instance's attributes (the type and the user data
only while stopped, termination protection honoured by TerminateInstances),
reads its console and the region's offerings; bob gets NotFound on her
instance. Then an address moves only with AllowReassociation, and a volume
and an address whose VM is terminated are let go in the broker's records
(the Rust test runs the reconciler meanwhile). Prints a JSON summary the
Rust test checks.
"""
import base64
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
        return [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
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


def state(c, iid):
    return c.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]


def launch(c, image_name, count=1):
    ami = next(i["ImageId"] for i in c.describe_images()["Images"] if i["Name"] == image_name)
    ids = [i["InstanceId"] for i in c.run_instances(ImageId=ami, MinCount=count, MaxCount=count)["Instances"]]
    for iid in ids:
        wait(f"{iid} running", lambda: state(c, iid) == "running")
    return ids


def attr(c, iid, name):
    r = c.describe_instance_attribute(InstanceId=iid, Attribute=name)
    key = name[0].upper() + name[1:]
    return r.get(key, {}).get("Value")


def attributes(alice, bob, iid, zone, region):
    out = {}
    out["type"] = attr(alice, iid, "instanceType")
    out["protected_default"] = attr(alice, iid, "disableApiTermination")
    out["type_running"] = code_of(alice.modify_instance_attribute, InstanceId=iid, InstanceType={"Value": "t2.medium"})
    out["user_data_running"] = code_of(alice.modify_instance_attribute, InstanceId=iid, UserData={"Value": b"#!/bin/sh\necho hi\n"})
    out["bob_describe"] = code_of(bob.describe_instance_attribute, InstanceId=iid, Attribute="instanceType")
    out["bob_modify"] = code_of(bob.modify_instance_attribute, InstanceId=iid, DisableApiTermination={"Value": True})
    out["bob_console"] = code_of(bob.get_console_output, InstanceId=iid)
    out["unsupported"] = code_of(alice.describe_instance_attribute, InstanceId=iid, Attribute="kernel")
    out["two_at_once"] = code_of(alice.modify_instance_attribute, InstanceId=iid,
                                 SourceDestCheck={"Value": False}, DisableApiTermination={"Value": True})
    # Console: text (base64 on the wire; botocore decodes it), a timestamp.
    c = alice.get_console_output(InstanceId=iid)
    text = c.get("Output", "")
    out["console"] = [c["InstanceId"] == iid, len(text) > 0, "Timestamp" in c]
    out["console_login"] = "login:" in text
    # Termination protection, honoured by the broker.
    alice.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": True})
    out["protected"] = attr(alice, iid, "disableApiTermination")
    out["terminate_protected"] = code_of(alice.terminate_instances, InstanceIds=[iid])
    out["still_running"] = state(alice, iid)
    out["dry_run_protected"] = code_of(alice.terminate_instances, InstanceIds=[iid], DryRun=True)
    alice.modify_instance_attribute(InstanceId=iid, Attribute="disableApiTermination", Value="false")
    out["unprotected"] = attr(alice, iid, "disableApiTermination")
    # Shutdown behaviour and source/dest check, in the cloud.
    alice.modify_instance_attribute(InstanceId=iid, InstanceInitiatedShutdownBehavior={"Value": "terminate"})
    out["shutdown"] = attr(alice, iid, "instanceInitiatedShutdownBehavior")
    out["bad_shutdown"] = code_of(alice.modify_instance_attribute, InstanceId=iid,
                                  InstanceInitiatedShutdownBehavior={"Value": "halt"})
    alice.modify_instance_attribute(InstanceId=iid, SourceDestCheck={"Value": False})
    out["source_dest"] = attr(alice, iid, "sourceDestCheck")
    # Stopped: the type and the user data change; the record follows.
    alice.stop_instances(InstanceIds=[iid])
    wait(f"{iid} stopped", lambda: state(alice, iid) == "stopped")
    out["dry_run_type"] = code_of(alice.modify_instance_attribute, InstanceId=iid, InstanceType={"Value": "t2.medium"}, DryRun=True)
    out["type_after_dry_run"] = attr(alice, iid, "instanceType")
    alice.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": "t2.medium"})
    out["type_stopped"] = attr(alice, iid, "instanceType")
    out["described_type"] = alice.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["InstanceType"]
    alice.modify_instance_attribute(InstanceId=iid, UserData={"Value": b"#!/bin/sh\necho hi\n"})
    ud = attr(alice, iid, "userData")
    out["user_data"] = base64.b64decode(ud).decode() if ud else None
    alice.start_instances(InstanceIds=[iid])
    wait(f"{iid} running again", lambda: state(alice, iid) == "running")
    out["type_after_start"] = attr(alice, iid, "instanceType")
    # Offerings: the region's types, in its one zone.
    offers = alice.describe_instance_type_offerings(LocationType="availability-zone")["InstanceTypeOfferings"]
    out["offer_locations"] = sorted({o["Location"] for o in offers})
    out["offer_has_medium"] = any(o["InstanceType"] == "t2.medium" for o in offers)
    region_offers = alice.describe_instance_type_offerings(
        Filters=[{"Name": "instance-type", "Values": ["t2.micro"]}])["InstanceTypeOfferings"]
    out["offer_region"] = [[o["InstanceType"], o["LocationType"], o["Location"]] for o in region_offers]
    out["offer_bad_location_type"] = code_of(alice.describe_instance_type_offerings, LocationType="planet")
    out["offer_bad_filter"] = code_of(alice.describe_instance_type_offerings, Filters=[{"Name": "zone", "Values": ["x"]}])
    return out


def address(c, alloc):
    return c.describe_addresses(AllocationIds=[alloc])["Addresses"][0]


def volume(c, vid):
    return c.describe_volumes(VolumeIds=[vid])["Volumes"][0]


def reconcile(alice, vm1, vm2, zone):
    out = {}
    a = alice.allocate_address(Domain="vpc")
    alloc, ip = a["AllocationId"], a["PublicIp"]
    alice.associate_address(AllocationId=alloc, InstanceId=vm1)
    out["reassociate_refused"] = code_of(alice.associate_address, AllocationId=alloc, InstanceId=vm2)
    out["still_on_vm1"] = address(alice, alloc).get("InstanceId") == vm1
    alice.associate_address(AllocationId=alloc, InstanceId=vm2, AllowReassociation=True)
    d = address(alice, alloc)
    out["moved"] = d.get("InstanceId") == vm2
    vm1_ip = alice.describe_instances(InstanceIds=[vm1])["Reservations"][0]["Instances"][0].get("PublicIpAddress")
    out["vm1_lost_ip"] = vm1_ip != ip
    vid = alice.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    wait("volume available", lambda: volume(alice, vid)["State"] == "available")
    alice.attach_volume(VolumeId=vid, InstanceId=vm2, Device="/dev/sdf")
    wait("volume in-use", lambda: volume(alice, vid)["State"] == "in-use")
    alice.terminate_instances(InstanceIds=[vm2])
    wait("vm2 terminated", lambda: state(alice, vm2) == "terminated")
    # The reconciler lets them go: the volume detached (or deleted with its VM), the address free.
    wait("volume let go", lambda: not alice.describe_volumes(Filters=[{"Name": "volume-id", "Values": [vid]}])["Volumes"]
         or (volume(alice, vid)["State"] == "available" and not volume(alice, vid)["Attachments"]))
    wait("address let go", lambda: "InstanceId" not in address(alice, alloc))
    out["volume_after"] = [v["State"] for v in alice.describe_volumes(Filters=[{"Name": "volume-id", "Values": [vid]}])["Volumes"]]
    out["address_after"] = "AssociationId" in address(alice, alloc)
    alice.release_address(AllocationId=alloc)
    if out["volume_after"]:
        alice.delete_volume(VolumeId=vid)
    return out


summary = {}
for entry in os.environ["REGIONS"].split(","):
    region, zone, image = entry.split("=")
    alice = client(os.environ["ALICE_AK"], os.environ["ALICE_SK"], region)
    bob = client(os.environ["BOB_AK"], os.environ["BOB_SK"], region)
    vm1, vm2 = launch(alice, image, 2)
    summary[region] = {"attributes": attributes(alice, bob, vm1, zone, region), "reconcile": reconcile(alice, vm1, vm2, zone)}
    alice.terminate_instances(InstanceIds=[vm1])
print(json.dumps(summary))
