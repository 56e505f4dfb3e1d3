"""Launch policies through the EC2 front, driven by boto3: each policy of
`sb` refuses a RunInstances that breaks it with InvalidParameterValue and a
message naming the policy and the value (the dry run alike); the launch the
policies allow succeeds.

Run by crates/web/tests/launch_policies_api.rs with EP (the /ec2 endpoint)
and ALICE_AK/ALICE_SK; `sb` has policy.instance.types = t2.*, m5.large,
policy.images = linux, policy.tags.required = cost-center=(rd|ops|sales),
owner and policy.count.max = 2. Prints a JSON summary the Rust test checks.
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
    """[code, message] of a refused RunInstances, its dry run's code first checked to agree."""
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


ami = {i["Name"]: i["ImageId"] for i in alice.describe_images()["Images"]}
good = dict(ImageId=ami["linux"], MinCount=1, MaxCount=1, InstanceType="t2.small",
            TagSpecifications=tags([("cost-center", "rd"), ("owner", "alice")]))
out = {
    "type": refusal(**{**good, "InstanceType": "m5.xlarge"}),
    "image": refusal(**{**good, "ImageId": ami["alpine"]}),
    "missing_tag": refusal(**{**good, "TagSpecifications": tags([("cost-center", "rd")])}),
    "tag_value": refusal(**{**good, "TagSpecifications": tags([("cost-center", "hr"), ("owner", "alice")])}),
    "count": refusal(**{**good, "MaxCount": 3}),
}
launched = alice.run_instances(**good)
out["allowed"] = len(launched["Instances"])
two = alice.run_instances(**{**good, "InstanceType": "m5.large", "MaxCount": 2})
out["allowed_two"] = len(two["Instances"])
print(json.dumps(out))
