"""Budgets through the EC2 front, driven by boto3: alice's monthly budget
on `sb` is spent, so RunInstances and StartInstances of her stopped VM are
refused with InstanceLimitExceeded and a message naming the budget and its
figures.

Run by crates/web/tests/budgets_api.rs with EP (the /ec2 endpoint) and
ALICE_AK/ALICE_SK. Prints a JSON summary the Rust test checks.
"""
import json
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})
alice = boto3.client("ec2", endpoint_url=os.environ["EP"], region_name="sb", aws_access_key_id=os.environ["ALICE_AK"],
                     aws_secret_access_key=os.environ["ALICE_SK"], config=NO_RETRY)


def refused(call, **kw):
    """[code, message] of a refused call."""
    try:
        call(**kw)
        return ["admitted", ""]
    except ClientError as e:
        return [e.response["Error"]["Code"], e.response["Error"]["Message"]]


ami = {i["Name"]: i["ImageId"] for i in alice.describe_images()["Images"]}
stopped = [i["InstanceId"] for r in alice.describe_instances()["Reservations"] for i in r["Instances"]
           if i["State"]["Name"] == "stopped"]
out = {
    "run": refused(alice.run_instances, ImageId=ami["linux"], MinCount=1, MaxCount=1, InstanceType="t2.micro"),
    "start": refused(alice.start_instances, InstanceIds=stopped[:1]),
    "stopped": len(stopped),
}
print(json.dumps(out))
