"""Security groups through the EC2 front-end, driven by boto3.

Run by crates/web/tests/ec2_security_groups.rs with EP (the /ec2 endpoint),
ALICE_*/BOB_* keys and REGIONS ("region=image,..."): for each region (a
sandbox instance and an ec2 instance backed by moto) alice makes groups,
adds and removes rules (IpPermissions with CIDR, IPv6, source groups, and
the flat legacy form), describes them with filters, launches into a group
by id and by name, and deletes them; bob finds none of alice's groups. In
the STRICT regions (the sandbox, which enforces EC2's rules where moto does
not) a group in use is a DependencyViolation. Prints a JSON summary the
Rust test checks.
"""
import json
import os
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["EP"]
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})
STRICT = set(os.environ.get("STRICT", "").split(","))


def client(who, region):
    return boto3.client("ec2", endpoint_url=EP, region_name=region, aws_access_key_id=os.environ[f"{who}_AK"],
                        aws_secret_access_key=os.environ[f"{who}_SK"], config=NO_RETRY)


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def ssh(cidr="10.0.0.0/8", port=22, desc="ssh"):
    return [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr, "Description": desc}]}]


def scenario(region, ami):
    a, b = client("ALICE", region), client("BOB", region)
    o = {}
    web = a.create_security_group(GroupName=f"web-{region}", Description="web servers",
                                  TagSpecifications=[{"ResourceType": "security-group",
                                                      "Tags": [{"Key": "team", "Value": "web"}]}])["GroupId"]
    app = a.create_security_group(GroupName=f"app-{region}", Description="app servers")["GroupId"]
    o["ids"] = [web.startswith("sg-"), app.startswith("sg-"), web != app]
    o["duplicate"] = code_of(a.create_security_group, GroupName=f"web-{region}", Description="again")
    o["sg_name"] = code_of(a.create_security_group, GroupName="sg-bad", Description="d")
    o["dry_run"] = code_of(a.create_security_group, GroupName="dry", Description="d", DryRun=True)

    g = a.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]
    o["described"] = [g["GroupName"], g["Description"], {t["Key"]: t["Value"] for t in g.get("Tags", [])}]
    o["egress_default"] = any(p["IpProtocol"] == "-1" and any(r["CidrIp"] == "0.0.0.0/0" for r in p.get("IpRanges", []))
                              for p in g["IpPermissionsEgress"])
    o["vpc"] = bool(g.get("VpcId"))

    added = a.authorize_security_group_ingress(GroupId=web, IpPermissions=ssh() + [
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])
    o["added"] = sorted((r["IpProtocol"], r["FromPort"], r.get("CidrIpv4") or r.get("CidrIpv6"), r["IsEgress"])
                        for r in added["SecurityGroupRules"])
    o["rule_ids"] = all(r["SecurityGroupRuleId"].startswith("sgr-") for r in added["SecurityGroupRules"])
    o["dup_rule"] = code_of(a.authorize_security_group_ingress, GroupId=web, IpPermissions=ssh())
    o["bad_cidr"] = code_of(a.authorize_security_group_ingress, GroupId=web, IpPermissions=ssh("10.0.0.0/33"))
    o["bad_port"] = code_of(a.authorize_security_group_ingress, GroupId=web,
                            IpPermissions=[{"IpProtocol": "tcp", "FromPort": 90, "ToPort": 80,
                                            "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    o["bad_protocol"] = code_of(a.authorize_security_group_ingress, GroupId=web,
                                IpPermissions=[{"IpProtocol": "tcpx", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    # The legacy flat form.
    a.authorize_security_group_ingress(GroupId=web, IpProtocol="udp", FromPort=53, ToPort=53, CidrIp="10.1.0.0/16")
    # A source group, and an egress rule.
    a.authorize_security_group_ingress(GroupId=app, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": web}]}])
    a.authorize_security_group_egress(GroupId=app, IpPermissions=ssh("192.168.0.0/16", 5432, "db"))

    g = a.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]
    o["ingress"] = sorted((p["IpProtocol"], p.get("FromPort"), len(p.get("IpRanges", [])), len(p.get("Ipv6Ranges", [])))
                          for p in g["IpPermissions"])
    o["descriptions"] = [r.get("Description") for p in g["IpPermissions"] for r in p.get("IpRanges", [])
                         if r["CidrIp"] == "10.0.0.0/8"]
    ga = a.describe_security_groups(GroupIds=[app])["SecurityGroups"][0]
    o["source_group"] = [pair["GroupId"] == web for p in ga["IpPermissions"] for pair in p.get("UserIdGroupPairs", [])]
    o["egress_rule"] = any(p.get("FromPort") == 5432 for p in ga["IpPermissionsEgress"])

    def count(**kw):
        return len(a.describe_security_groups(**kw)["SecurityGroups"])
    o["filters"] = [
        count(Filters=[{"Name": "group-name", "Values": [f"web-{region}"]}]),
        count(Filters=[{"Name": "tag:team", "Values": ["web"]}]),
        count(Filters=[{"Name": "ip-permission.cidr", "Values": ["10.0.0.0/8"]}]),
        count(Filters=[{"Name": "ip-permission.group-id", "Values": [web]}]),
        count(Filters=[{"Name": "description", "Values": ["app*"]}]),
        count(Filters=[{"Name": "group-id", "Values": [web, app]}]),
        count(GroupNames=[f"app-{region}"]),
    ]
    o["bad_filter"] = code_of(a.describe_security_groups, Filters=[{"Name": "colour", "Values": ["x"]}])
    o["malformed"] = code_of(a.describe_security_groups, GroupIds=["nope"])
    o["unknown"] = code_of(a.describe_security_groups, GroupIds=["sg-0123456789abcdef0"])
    rules = a.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [web]}])["SecurityGroupRules"]
    o["rules"] = sorted((r["IsEgress"], r["IpProtocol"], r["FromPort"]) for r in rules)

    # Revoking: once, then the rule is gone.
    a.revoke_security_group_ingress(GroupId=web, IpPermissions=ssh())
    o["revoked_again"] = code_of(a.revoke_security_group_ingress, GroupId=web, IpPermissions=ssh())
    g = a.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]
    o["after_revoke"] = sorted(p.get("FromPort") for p in g["IpPermissions"])

    # Another project's groups do not exist.
    o["bob_list"] = [x["GroupName"] for x in b.describe_security_groups()["SecurityGroups"]]
    o["bob_describe"] = code_of(b.describe_security_groups, GroupIds=[web])
    o["bob_delete"] = code_of(b.delete_security_group, GroupId=web)
    o["bob_authorize"] = code_of(b.authorize_security_group_ingress, GroupId=web, IpPermissions=ssh())
    o["bob_revoke"] = code_of(b.revoke_security_group_ingress, GroupId=web, IpPermissions=ssh("10.1.0.0/16", 53))
    o["bob_run"] = code_of(b.run_instances, ImageId=ami, MinCount=1, MaxCount=1, SecurityGroupIds=[web])
    o["bob_peer"] = None
    own = b.create_security_group(GroupName=f"bob-{region}", Description="bob's")["GroupId"]
    o["bob_peer"] = code_of(b.authorize_security_group_ingress, GroupId=own, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "UserIdGroupPairs": [{"GroupId": web}]}])
    b.delete_security_group(GroupId=own)

    # Launches: by id and by name; an unknown name is refused.
    r = a.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SecurityGroupIds=[web])["Instances"][0]["InstanceId"]
    r2 = a.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SecurityGroups=[f"app-{region}"])["Instances"][0]["InstanceId"]
    o["launched"] = [r.startswith("i-"), r2.startswith("i-")]
    o["run_unknown"] = code_of(a.run_instances, ImageId=ami, MinCount=1, MaxCount=1, SecurityGroups=["no-such-group"])
    o["run_malformed"] = code_of(a.run_instances, ImageId=ami, MinCount=1, MaxCount=1, SecurityGroupIds=["bad"])
    o["run_dry"] = code_of(a.run_instances, ImageId=ami, MinCount=1, MaxCount=1, SecurityGroupIds=[web], DryRun=True)
    o["run_dry_unknown"] = code_of(a.run_instances, ImageId=ami, MinCount=1, MaxCount=1, SecurityGroups=["nope"], DryRun=True)
    if region in STRICT:
        o["in_use"] = code_of(a.delete_security_group, GroupId=app)
    o["delete_default"] = code_of(a.delete_security_group, GroupName="default")
    a.terminate_instances(InstanceIds=[r, r2])
    if region in STRICT:
        deadline = time.time() + 30
        while time.time() < deadline:
            states = [i["State"]["Name"] for res in a.describe_instances(InstanceIds=[r, r2])["Reservations"]
                      for i in res["Instances"]]
            if all(s == "terminated" for s in states):
                break
            time.sleep(0.1)

    # The source-group rule names web: out first, then both go.
    a.revoke_security_group_ingress(GroupId=app, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": web}]}])
    a.delete_security_group(GroupName=f"app-{region}")
    a.delete_security_group(GroupId=web)
    o["deleted"] = code_of(a.describe_security_groups, GroupIds=[web])
    o["deleted_again"] = code_of(a.delete_security_group, GroupId=web)
    o["left"] = [x["GroupName"] for x in a.describe_security_groups()["SecurityGroups"]]
    return o


def main():
    out = {}
    for spec in os.environ["REGIONS"].split(","):
        region, ami = spec.split("=")
        out[region] = scenario(region, ami)
    print(json.dumps(out))


main()
