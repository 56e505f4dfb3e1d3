"""Several cloud accounts behind one project, driven by boto3 through the EC2 front-end.

Run by crates/web/tests/ec2_cloud_accounts.rs with EP (the /ec2 endpoint),
REGIONS ("region=image,..."), the broker keys ALICE_*, BOB_*, CAROL_* (their
personal projects) and ALICE_TEAM_*, BOB_TEAM_* (project `team`), and, for
the regions in front of moto (MOTO_REGIONS), MOTO (moto's endpoint) with
alice's cloud keys MOTO_ALICE_AK/SK, to read what the cloud itself holds.
alice and bob act in two cloud accounts (the sandbox: one per user; moto: a
role of another account for bob); carol has no credential on moto.

For each region:
1. alice makes an image of her VM and shares it with bob and carol: the
   cloud's launch permissions name bob's account (not carol's, who has no
   credential there); bob launches it; removing bob revokes it at the cloud.
2. In `team`, alice makes a VPC, a subnet and a group; bob launches into her
   subnet with her group: the VM is in her account, and both act on it.
3. In `team`, alice makes an image of a VM; bob launches it (the sandbox,
   which enforces launch permissions, refuses until the broker grants).
Prints a JSON summary the Rust test checks.
"""
import json
import os
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["EP"]
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


def client(who, region):
    return boto3.client("ec2", endpoint_url=EP, region_name=region, aws_access_key_id=os.environ[f"{who}_AK"],
                        aws_secret_access_key=os.environ[f"{who}_SK"], config=NO_RETRY)


def cloud():
    return boto3.client("ec2", endpoint_url=os.environ["MOTO"], region_name="us-east-1",
                        aws_access_key_id=os.environ["MOTO_ALICE_AK"], aws_secret_access_key=os.environ["MOTO_ALICE_SK"],
                        config=NO_RETRY)


def wait(what, probe, timeout=20):
    deadline = time.time() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def instance(c, iid):
    return c.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]


def launch(c, ami, **kw):
    iid = c.run_instances(ImageId=ami, MinCount=1, MaxCount=1, **kw)["Instances"][0]["InstanceId"]
    wait(f"{iid} running", lambda: instance(c, iid)["State"]["Name"] == "running")
    return iid


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def cloud_permissions(ami_cloud_id):
    got = cloud().describe_image_attribute(ImageId=ami_cloud_id, Attribute="launchPermission")["LaunchPermissions"]
    return sorted(p["UserId"] for p in got)


def region_run(region, image_name, on_moto):
    alice, bob, carol = client("ALICE", region), client("BOB", region), client("CAROL", region)
    alice_t, bob_t = client("ALICE_TEAM", region), client("BOB_TEAM", region)
    out = {}
    base = next(i["ImageId"] for i in alice.describe_images()["Images"] if i["Name"] == image_name)

    # 1. An image shared with a user of another account.
    vm = launch(alice, base)
    ami = alice.create_image(InstanceId=vm, Name=f"acct-img-{region}", NoReboot=True)["ImageId"]
    cloud_ami = None
    if on_moto:
        cloud_ami = next(i["ImageId"] for i in cloud().describe_images(Owners=["self"])["Images"]
                         if i["Name"] == f"acct-img-{region}")
        out["cloud_before"] = cloud_permissions(cloud_ami)
    alice.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"UserId": "bob"}, {"UserId": "carol"}]})
    if on_moto:
        out["cloud_shared"] = cloud_permissions(cloud_ami)
    bob_vm = launch(bob, ami)
    out["bob_launched"] = instance(bob, bob_vm)["ImageId"] == ami
    alice.modify_image_attribute(ImageId=ami, LaunchPermission={"Remove": [{"UserId": "bob"}]})
    if on_moto:
        out["cloud_removed"] = cloud_permissions(cloud_ami)
    out["bob_after_remove"] = code_of(bob.run_instances, ImageId=ami, MinCount=1, MaxCount=1)
    out["carol_sees"] = [i["ImageId"] for i in carol.describe_images(ImageIds=[ami])["Images"]]

    # 2. bob launches into alice's subnet, with her group, in project team.
    vpc = alice_t.create_vpc(CidrBlock="10.44.0.0/16")["Vpc"]["VpcId"]
    subnet = alice_t.create_subnet(VpcId=vpc, CidrBlock="10.44.5.0/24")["Subnet"]["SubnetId"]
    group = alice_t.create_security_group(GroupName="acct-web", Description="web", VpcId=vpc)["GroupId"]
    team_vm = launch(bob_t, base, SubnetId=subnet, SecurityGroupIds=[group])
    seen = instance(alice_t, team_vm)
    out["team_placed"] = [seen["SubnetId"] == subnet, seen["VpcId"] == vpc, seen["PrivateIpAddress"].startswith("10.44.5.")]
    out["team_cloud_id"] = team_vm
    alice_t.stop_instances(InstanceIds=[team_vm])
    wait("stopped", lambda: instance(bob_t, team_vm)["State"]["Name"] == "stopped")
    bob_t.start_instances(InstanceIds=[team_vm])
    wait("running again", lambda: instance(alice_t, team_vm)["State"]["Name"] == "running")
    out["team_acted"] = True

    # 3. An image of the team, launched by a member of another account.
    team_base = launch(alice_t, base)
    team_ami = alice_t.create_image(InstanceId=team_base, Name=f"team-img-{region}", NoReboot=True)["ImageId"]
    team_launch = launch(bob_t, team_ami)
    out["team_image_launched"] = instance(bob_t, team_launch)["ImageId"] == team_ami

    for c, ids in [(bob_t, [team_vm, team_launch]), (alice_t, [team_base]), (bob, [bob_vm]), (alice, [vm])]:
        c.terminate_instances(InstanceIds=ids)
    return out


def main():
    moto_regions = set(filter(None, os.environ.get("MOTO_REGIONS", "").split(",")))
    out = {}
    for spec in os.environ["REGIONS"].split(","):
        region, image = spec.split("=")
        out[region] = region_run(region, image, region in moto_regions)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
