"""RunInstances' MinCount and MaxCount driven by boto3: one request, one
admission, as many instances as the quota leaves room for (never a second
launch), and the dry run agreeing.

Run by crates/web/tests/ec2_launch_contract.rs with EP (the /ec2 endpoint)
and ALICE_AK/ALICE_SK; alice's quota on `sb` is 3. Prints a JSON summary the
Rust test checks.
"""
import json
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})
alice = boto3.client("ec2", endpoint_url=os.environ["EP"], region_name="sb", aws_access_key_id=os.environ["ALICE_AK"],
                     aws_secret_access_key=os.environ["ALICE_SK"], config=NO_RETRY)


def code_of(fn, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


ami = [i["ImageId"] for i in alice.describe_images()["Images"] if i["Name"] == "ubuntu"][0]
out = {}
first = alice.run_instances(ImageId=ami, MinCount=1, MaxCount=2)
out["first"] = len(first["Instances"])
# 2 of 3 used: the dry run of 2..5 is refused, of 1..5 admitted.
out["dry_two"] = code_of(alice.run_instances, ImageId=ami, MinCount=2, MaxCount=5, DryRun=True)
out["dry_one"] = code_of(alice.run_instances, ImageId=ami, MinCount=1, MaxCount=5, DryRun=True)
second = alice.run_instances(ImageId=ami, MinCount=1, MaxCount=5, ClientToken="range-1",
                             TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]}])
out["second"] = len(second["Instances"])
again = alice.run_instances(ImageId=ami, MinCount=1, MaxCount=5, ClientToken="range-1")
out["replayed"] = [i["InstanceId"] for i in again["Instances"]] == [i["InstanceId"] for i in second["Instances"]]
out["full"] = code_of(alice.run_instances, ImageId=ami, MinCount=1, MaxCount=5)
reservations = alice.describe_instances()["Reservations"]
out["described"] = [len(reservations), sum(len(r["Instances"]) for r in reservations)]
print(json.dumps(out))
