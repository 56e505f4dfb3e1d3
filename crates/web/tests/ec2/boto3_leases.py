"""VM leases through the EC2 front, driven by boto3: the reserved tag
`cloudbroker:lease` on RunInstances (a duration or an RFC 3339 time) sets
the lease and is not kept as a tag; DescribeInstances and DescribeTags show
`cloudbroker:lease-expires` (the absolute expiry) and
`cloudbroker:lease-action`; a malformed value, and a lease past lease.max,
are InvalidParameterValue (the dry run alike).

Run by crates/web/tests/leases_api.rs with EP (the /ec2 endpoint),
ALICE_AK/ALICE_SK and UNTIL (an RFC 3339 time 5 hours after the broker's
clock); `sb` has lease.max = 1d and lease.action = stop. Prints a JSON
summary the Rust test checks (expiries exactly as the broker writes them).
"""
import json
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})
alice = boto3.client("ec2", endpoint_url=os.environ["EP"], region_name="sb", aws_access_key_id=os.environ["ALICE_AK"],
                     aws_secret_access_key=os.environ["ALICE_SK"], config=NO_RETRY)


def refusal(**kw):
    """[code, message] of a refused RunInstances, its dry run's first checked to agree."""
    try:
        alice.run_instances(DryRun=True, **kw)
        return ["dry run admitted", ""]
    except ClientError as e:
        dry = [e.response["Error"]["Code"], e.response["Error"]["Message"]]
    try:
        alice.run_instances(**kw)
        return ["admitted", ""]
    except ClientError as e:
        got = [e.response["Error"]["Code"], e.response["Error"]["Message"]]
    return got if got == dry else ["dry run differs", repr(dry)]


def tags(pairs):
    return [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in pairs]}]


def tag_map(instance):
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def described(instance_id):
    r = alice.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return r[0]["Instances"][0]


ami = {i["Name"]: i["ImageId"] for i in alice.describe_images()["Images"]}
base = dict(ImageId=ami["linux"], MinCount=1, MaxCount=1)
out = {}

first = alice.run_instances(**base, TagSpecifications=tags([("owner", "alice"), ("cloudbroker:lease", "8h")]))["Instances"][0]
out["run_tags"] = tag_map(first)
out["described_tags"] = tag_map(described(first["InstanceId"]))

until = alice.run_instances(**base, TagSpecifications=tags([("cloudbroker:lease", os.environ["UNTIL"])]))["Instances"][0]
out["until_expires"] = tag_map(described(until["InstanceId"])).get("cloudbroker:lease-expires")

plain = alice.run_instances(**base)["Instances"][0]
out["default_expires"] = tag_map(described(plain["InstanceId"])).get("cloudbroker:lease-expires")

found = alice.describe_tags(Filters=[{"Name": "resource-id", "Values": [first["InstanceId"]]},
                                     {"Name": "key", "Values": ["cloudbroker:lease-expires"]}])["Tags"]
out["describe_tags"] = [t["Value"] for t in found]

expires = out["run_tags"].get("cloudbroker:lease-expires", "")
matching = alice.describe_instances(Filters=[{"Name": "tag:cloudbroker:lease-expires", "Values": [expires]}])["Reservations"]
out["filtered"] = sum(len(r["Instances"]) for r in matching)

out["bad"] = refusal(**base, TagSpecifications=tags([("cloudbroker:lease", "soon")]))
out["over_max"] = refusal(**base, TagSpecifications=tags([("cloudbroker:lease", "2d")]))
print(json.dumps(out))
