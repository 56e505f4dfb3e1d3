"""RegisterImage/DeregisterImage, keyName, the ip-address filters, ClientToken
per user and the SigV2 default region, driven by boto3 (SigV4, and SigV2 with
botocore's own `v2` signer).

Run by crates/web/tests/ec2.rs with EP (the /ec2 endpoint), API (the broker's
base URL), ALICE_AK/ALICE_SK/ALICE_TOKEN, BOB_AK/BOB_SK. Asserts as it goes;
prints a JSON summary the Rust test checks.
"""
import json
import os
import time
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["EP"]
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


def client(ak, sk, region="sb", **cfg):
    config = NO_RETRY.merge(Config(**cfg)) if cfg else NO_RETRY
    return boto3.client("ec2", endpoint_url=EP, region_name=region, aws_access_key_id=ak, aws_secret_access_key=sk,
                        config=config)


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def api_put(path, body, token):
    req = urllib.request.Request(os.environ["API"] + path, data=json.dumps(body).encode(), method="PUT",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


alice = client(os.environ["ALICE_AK"], os.environ["ALICE_SK"])
bob = client(os.environ["BOB_AK"], os.environ["BOB_SK"])
out = {}

public = {i["Name"]: i["ImageId"] for i in alice.describe_images()["Images"]}
ubuntu = public["ubuntu"]

# RegisterImage: an id the cloud behind the region has becomes alice's private image.
out["register_unknown"] = code_of(alice.register_image, Name="nope", ImageLocation="ami-sandbox-no-such-image")
out["register_bad_name"] = code_of(alice.register_image, Name="Bad Name!", ImageLocation="ami-sandbox-debian-12")
mine = alice.register_image(Name="alice-debian", ImageLocation="ami-sandbox-debian-12", Description="my debian")["ImageId"]
assert mine.startswith("ami-") and mine != ubuntu, mine
out["register_duplicate"] = code_of(alice.register_image, Name="alice-debian", ImageLocation="ami-sandbox-debian-12")
out["alice_all"] = sorted(i["Name"] for i in alice.describe_images()["Images"])
out["alice_self"] = sorted(i["Name"] for i in alice.describe_images(Owners=["self"])["Images"])
out["alice_broker"] = sorted(i["Name"] for i in alice.describe_images(Owners=["cloudbroker"])["Images"])
got = alice.describe_images(ImageIds=[mine])["Images"][0]
out["mine_shape"] = [got["Name"], got["OwnerId"], got["Public"], got["Description"]]
out["filter_name"] = sorted(i["Name"] for i in alice.describe_images(Filters=[{"Name": "name", "Values": ["alice-*"]}])["Images"])
out["filter_id"] = sorted(i["Name"] for i in alice.describe_images(Filters=[{"Name": "image-id", "Values": [ubuntu]}])["Images"])
out["bob_all"] = sorted(i["Name"] for i in bob.describe_images()["Images"])
out["bob_self"] = sorted(i["Name"] for i in bob.describe_images(Owners=["self"])["Images"])
out["bob_named"] = code_of(bob.describe_images, ImageIds=[mine])
out["bob_run"] = code_of(bob.run_instances, ImageId=mine, MinCount=1, MaxCount=1)
out["bob_deregister"] = code_of(bob.deregister_image, ImageId=mine)
out["bob_deregister_public"] = code_of(bob.deregister_image, ImageId=ubuntu)

# RunInstances with the registered image, a key pair, a client token.
alice.import_key_pair(KeyName="k-alice", PublicKeyMaterial=b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbX4xYtV3y7m7lJv0Zs8H0QpG7mY1cGk2cQ3mQd0xYb alice@test")
r = alice.run_instances(ImageId=mine, MinCount=1, MaxCount=1, KeyName="k-alice", ClientToken="same-token")
with_key = r["Instances"][0]["InstanceId"]
out["run_image"] = r["Instances"][0]["ImageId"] == mine
out["run_key_name"] = r["Instances"][0].get("KeyName")
plain = alice.run_instances(ImageId=ubuntu, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
# ClientToken: the same token from the same user is the same reservation; from bob, an independent launch.
again = alice.run_instances(ImageId=mine, MinCount=1, MaxCount=1, KeyName="k-alice", ClientToken="same-token")
out["token_same_user"] = [again["ReservationId"] == r["ReservationId"], again["Instances"][0]["InstanceId"] == with_key]
bobs = bob.run_instances(ImageId=ubuntu, MinCount=1, MaxCount=1, ClientToken="same-token")
out["token_other_user"] = [bobs["ReservationId"] != r["ReservationId"], bobs["Instances"][0]["InstanceId"] != with_key]


def running(c, ids):
    for _ in range(100):
        d = c.describe_instances(InstanceIds=ids)["Reservations"]
        insts = [i for res in d for i in res["Instances"]]
        if all(i["State"]["Name"] == "running" and i.get("PrivateIpAddress") for i in insts):
            return insts
        time.sleep(0.1)
    raise AssertionError(f"not running with addresses: {insts}")


insts = {i["InstanceId"]: i for i in running(alice, [with_key, plain])}
out["alice_live"] = len([i for res in alice.describe_instances()["Reservations"] for i in res["Instances"]])


def ids_where(c, name, values):
    d = c.describe_instances(Filters=[{"Name": name, "Values": values}])["Reservations"]
    return sorted(i["InstanceId"] for res in d for i in res["Instances"])


out["describe_key_name"] = insts[with_key].get("KeyName")
out["plain_key_name"] = insts[plain].get("KeyName")
out["filter_key_name"] = ids_where(alice, "key-name", ["k-alice"]) == [with_key]
out["filter_key_glob"] = ids_where(alice, "key-name", ["k-*"]) == [with_key]
out["filter_key_none"] = ids_where(alice, "key-name", ["other"])
priv = insts[with_key]["PrivateIpAddress"]
out["filter_private_ip"] = ids_where(alice, "private-ip-address", [priv]) == [with_key]
out["filter_private_ip_none"] = ids_where(alice, "private-ip-address", ["203.0.113.254"])
pub = insts[plain].get("PublicIpAddress")
assert pub, insts[plain]
out["filter_public_ip"] = ids_where(alice, "ip-address", [pub]) == [plain]
out["bob_filter_ip"] = ids_where(bob, "ip-address", [pub])

# SigV2 (botocore's own signer) to plain /ec2: refused without a default region, then uses it.
v2 = client(os.environ["ALICE_AK"], os.environ["ALICE_SK"], signature_version="v2")
try:
    v2.describe_instances()
    out["v2_without_default"] = None
except ClientError as e:
    out["v2_without_default"] = [e.response["Error"]["Code"], "default EC2 region" in e.response["Error"]["Message"]]
status, body = api_put("/api/v1/users/alice/default-ec2-region", {"default_ec2_region": "no-such-region"}, os.environ["ALICE_TOKEN"])
# A well-formed name that no instance has: a configuration conflict (409) naming the field.
out["api_bad_region"] = [status, "no-such-region" in body and json.loads(body)["error"].get("field") == "default_ec2_region"]
status, body = api_put("/api/v1/users/alice/default-ec2-region", {"default_ec2_region": "not a name!"}, os.environ["ALICE_TOKEN"])
out["api_malformed_region"] = [status, json.loads(body)["error"].get("field") == "default_ec2_region"]
status, _ = api_put("/api/v1/users/alice/default-ec2-region", {"default_ec2_region": "sb"}, os.environ["ALICE_TOKEN"])
out["api_set_region"] = status
d = v2.describe_instances()["Reservations"]
out["v2_ids"] = sorted(i["InstanceId"] for res in d for i in res["Instances"]) == sorted([with_key, plain])
out["v2_images"] = sorted(i["Name"] for i in v2.describe_images()["Images"])
status, _ = api_put("/api/v1/users/alice/default-ec2-region", {"default_ec2_region": "sb2"}, os.environ["ALICE_TOKEN"])
d = v2.describe_instances()["Reservations"]
out["v2_other_region"] = [status, sum(len(res["Instances"]) for res in d)]

# Deregister by the owner: gone for everyone, its VMs unaffected.
alice.terminate_instances(InstanceIds=[with_key, plain])
out["deregister"] = alice.deregister_image(ImageId=mine)["ResponseMetadata"]["HTTPStatusCode"]
out["after_deregister"] = code_of(alice.describe_images, ImageIds=[mine])
out["deregister_again"] = code_of(alice.deregister_image, ImageId=mine)
print(json.dumps(out))
