"""A project's own launch policy through the EC2 front, driven by boto3:
RunInstances with a team key of team-a (whose policy.instance.types is
t2.*) refuses an m5.large with InvalidParameterValue and the message naming
the project (the dry run alike), and launches a t2.micro.

Run by crates/web/tests/project_policies_api.rs with EP (the /ec2
endpoint), AK/SK (bob's team-a key) and AMI (the linux image's id). Prints
a JSON summary the Rust test checks.
"""
import json
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})
bob = boto3.client("ec2", endpoint_url=os.environ["EP"], region_name="sb", aws_access_key_id=os.environ["AK"],
                   aws_secret_access_key=os.environ["SK"], config=NO_RETRY)


def refusal(**kw):
    """[code, message] of a refused RunInstances, its dry run's first checked to agree."""
    got = []
    for dry in (True, False):
        try:
            bob.run_instances(DryRun=dry, **kw)
            return ["admitted", str(dry)]
        except ClientError as e:
            got.append([e.response["Error"]["Code"], e.response["Error"]["Message"]])
    return got[1] if got[0] == got[1] else ["dry run differs", repr(got)]


ami = os.environ["AMI"]
out = {"refused": refusal(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m5.large")}
out["allowed"] = len(bob.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t2.micro")["Instances"])
print(json.dumps(out))
