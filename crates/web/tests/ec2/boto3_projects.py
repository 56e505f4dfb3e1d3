"""Access keys per project, driven by boto3 (a client nobody here wrote).

Run by crates/web/tests/ec2_projects.rs twice, with EP (the /ec2 endpoint)
and the access keys of one user, mark: MARK_AK/MARK_SK (his personal
project) and MARK_TEAM_AK/MARK_TEAM_SK (team-a, where he is a member); of
olga (team-a's owner): OLGA_TEAM_AK/OLGA_TEAM_SK; of vera (team-a's viewer):
VERA_TEAM_AK/VERA_TEAM_SK. PHASE=before: while mark is a member; PHASE=after:
once he was removed from team-a (TEAM_VM, PERSONAL_VM: what `before` made).
Asserts as it goes; prints a JSON summary the Rust test checks.
"""
import json
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["EP"]
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


def client(who):
    return boto3.client("ec2", endpoint_url=EP, region_name="sb", aws_access_key_id=os.environ[who + "_AK"],
                        aws_secret_access_key=os.environ[who + "_SK"], config=NO_RETRY)


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def ids(c, **kw):
    r = c.describe_instances(**kw)
    return sorted(i["InstanceId"] for res in r["Reservations"] for i in res["Instances"])


mark = client("MARK")
mark_team = client("MARK_TEAM")
olga_team = client("OLGA_TEAM")
vera_team = client("VERA_TEAM")
out = {}

if os.environ["PHASE"] == "before":
    ami = next(i["ImageId"] for i in mark_team.describe_images()["Images"] if i["Name"] == "ubuntu")
    # The team key launches in team-a; the personal key in mark's own project.
    team_vm = mark_team.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    personal_vm = mark.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    out["team_vm"], out["personal_vm"] = team_vm, personal_vm
    out["mark_team_sees"] = ids(mark_team)
    out["olga_team_sees"] = ids(olga_team)
    out["vera_team_sees"] = ids(vera_team)
    out["mark_personal_sees"] = ids(mark)
    out["mark_personal_describe_team_vm"] = code_of(mark.describe_instances, InstanceIds=[team_vm])
    out["olga_describe_personal_vm"] = code_of(olga_team.describe_instances, InstanceIds=[personal_vm])
    # Another member's team key acts on it (tags), the viewer's cannot.
    olga_team.create_tags(Resources=[team_vm], Tags=[{"Key": "owner", "Value": "olga"}])
    out["vera_terminate"] = code_of(vera_team.terminate_instances, InstanceIds=[team_vm])
    out["vera_stop"] = code_of(vera_team.stop_instances, InstanceIds=[team_vm])
    out["vera_run"] = code_of(vera_team.run_instances, ImageId=ami, MinCount=1, MaxCount=1)
    out["vera_describe_team_vm"] = ids(vera_team, InstanceIds=[team_vm])
else:
    team_vm, personal_vm = os.environ["TEAM_VM"], os.environ["PERSONAL_VM"]
    # Removed from team-a: the team key is refused at once, whatever it asks.
    out["mark_team_describe"] = code_of(mark_team.describe_instances)
    out["mark_team_terminate"] = code_of(mark_team.terminate_instances, InstanceIds=[team_vm])
    # The personal key keeps working.
    out["mark_personal_sees"] = ids(mark)
    # The team goes on without him.
    out["olga_team_sees"] = ids(olga_team)
    r = olga_team.terminate_instances(InstanceIds=[team_vm])["TerminatingInstances"]
    out["olga_terminated"] = [i["InstanceId"] for i in r]
    r = mark.terminate_instances(InstanceIds=[personal_vm])["TerminatingInstances"]
    out["mark_terminated"] = [i["InstanceId"] for i in r]

print(json.dumps(out))
