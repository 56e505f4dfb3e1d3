"""VPCs and subnets through the EC2 front-end, driven by boto3.

Run by crates/web/tests/ec2_vpcs.rs with EP (the /ec2 endpoint), API (the
broker's base URL) and ADMIN (an admin's token, to set the instances'
vpc.id / subnet.id), ALICE_*/BOB_* keys and REGIONS ("region=image,..."):
for each region (a sandbox instance and an ec2 instance backed by moto)
alice makes a VPC and a subnet, checks EC2's error codes, describes them
with filters, launches into the subnet (its private address inside the
block, SubnetId and VpcId shown), launches with the instance's subnet.id
and vpc.id defaults, and cleans up; bob finds none of alice's VPCs and
subnets. In the STRICT regions (the sandbox, which enforces EC2's rules
where moto does not) a subnet with instances is a DependencyViolation.
Prints a JSON summary the Rust test checks.
"""
import ipaddress
import json
import os
import time
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["EP"]
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})
STRICT = set(os.environ.get("STRICT", "").split(","))
UNKNOWN_VPC = "vpc-0123456789abcdef0"
UNKNOWN_SUBNET = "subnet-0123456789abcdef0"


def client(who, region):
    return boto3.client("ec2", endpoint_url=EP, region_name=region, aws_access_key_id=os.environ[f"{who}_AK"],
                        aws_secret_access_key=os.environ[f"{who}_SK"], config=NO_RETRY)


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def configure(params):
    req = urllib.request.Request(os.environ["API"] + "/api/v1/system/config", data=json.dumps(params).encode(), method="PUT",
                                 headers={"Authorization": "Bearer " + os.environ["ADMIN"], "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 200, r.status


def instance(c, iid):
    return c.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]


def launch(c, ami, **kw):
    return c.run_instances(ImageId=ami, MinCount=1, MaxCount=1, **kw)["Instances"][0]["InstanceId"]


def scenario(region, ami):
    a, b = client("ALICE", region), client("BOB", region)
    o = {}
    tags = [{"ResourceType": "vpc", "Tags": [{"Key": "team", "Value": "blue"}]}]
    vpc = a.create_vpc(CidrBlock="10.42.0.0/16", TagSpecifications=tags)["Vpc"]
    vid = vpc["VpcId"]
    o["vpc"] = [vid.startswith("vpc-"), vpc["CidrBlock"], vpc["IsDefault"]]
    o["vpc_range"] = code_of(a.create_vpc, CidrBlock="10.0.0.0/8")
    o["vpc_cidr"] = code_of(a.create_vpc, CidrBlock="10.0.0.1/16")
    o["vpc_tenancy"] = code_of(a.create_vpc, CidrBlock="10.9.0.0/16", InstanceTenancy="dedicated")
    o["vpc_dry"] = code_of(a.create_vpc, CidrBlock="10.9.0.0/16", DryRun=True)
    stags = [{"ResourceType": "subnet", "Tags": [{"Key": "tier", "Value": "web"}]}]
    sub = a.create_subnet(VpcId=vid, CidrBlock="10.42.1.0/24", TagSpecifications=stags)["Subnet"]
    sid = sub["SubnetId"]
    o["subnet"] = [sid.startswith("subnet-"), sub["VpcId"] == vid, sub["CidrBlock"], sub["AvailableIpAddressCount"],
                   sub["MapPublicIpOnLaunch"]]
    o["subnet_outside"] = code_of(a.create_subnet, VpcId=vid, CidrBlock="10.43.0.0/24")
    o["subnet_small"] = code_of(a.create_subnet, VpcId=vid, CidrBlock="10.42.2.0/29")
    o["subnet_conflict"] = code_of(a.create_subnet, VpcId=vid, CidrBlock="10.42.1.128/25")
    o["subnet_no_vpc"] = code_of(a.create_subnet, VpcId=UNKNOWN_VPC, CidrBlock="10.42.3.0/24")
    o["vpc_malformed"] = code_of(a.describe_vpcs, VpcIds=["nope"])
    o["vpc_unknown"] = code_of(a.describe_vpcs, VpcIds=[UNKNOWN_VPC])
    o["subnet_malformed"] = code_of(a.describe_subnets, SubnetIds=["nope"])
    o["subnet_unknown"] = code_of(a.describe_subnets, SubnetIds=[UNKNOWN_SUBNET])
    o["delete_unknown"] = [code_of(a.delete_vpc, VpcId=UNKNOWN_VPC), code_of(a.delete_subnet, SubnetId=UNKNOWN_SUBNET)]
    count = lambda fn, key, **f: len(fn(Filters=[{"Name": k.replace("_", "-"), "Values": v} for k, v in f.items()])[key])
    o["vpc_filters"] = [
        count(a.describe_vpcs, "Vpcs", **{"tag:team": ["blue"]}),
        count(a.describe_vpcs, "Vpcs", cidr=["10.42.0.0/16"]),
        count(a.describe_vpcs, "Vpcs", **{"cidr-block-association.cidr-block": ["10.42.*"]}),
        count(a.describe_vpcs, "Vpcs", vpc_id=[vid], state=["available"]),
        count(a.describe_vpcs, "Vpcs", is_default=["true"]),
        count(a.describe_vpcs, "Vpcs", **{"tag-key": ["team"]}),
    ]
    o["subnet_filters"] = [
        count(a.describe_subnets, "Subnets", vpc_id=[vid]),
        count(a.describe_subnets, "Subnets", cidr_block=["10.42.1.0/24"]),
        count(a.describe_subnets, "Subnets", subnet_id=[sid], state=["available"]),
        count(a.describe_subnets, "Subnets", **{"tag:tier": ["web"]}),
        count(a.describe_subnets, "Subnets", default_for_az=["false"], vpc_id=[vid]),
        count(a.describe_subnets, "Subnets", availability_zone=[sub["AvailabilityZone"]], vpc_id=[vid]),
    ]
    o["bad_filter"] = [code_of(a.describe_vpcs, Filters=[{"Name": "colour", "Values": ["x"]}]),
                       code_of(a.describe_subnets, Filters=[{"Name": "colour", "Values": ["x"]}])]
    default_vpc = a.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    default_subnet = a.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [default_vpc]}])["Subnets"][0]["SubnetId"]

    a.modify_subnet_attribute(SubnetId=sid, MapPublicIpOnLaunch={"Value": True})
    o["map_public"] = a.describe_subnets(SubnetIds=[sid])["Subnets"][0]["MapPublicIpOnLaunch"]
    o["modify_missing"] = code_of(a.modify_subnet_attribute, SubnetId=sid)
    o["modify_default"] = code_of(a.modify_subnet_attribute, SubnetId=default_subnet, MapPublicIpOnLaunch={"Value": False})

    net = ipaddress.ip_network("10.42.1.0/24")
    iid = launch(a, ami, SubnetId=sid)
    d = instance(a, iid)
    o["launched"] = [d.get("SubnetId") == sid, d.get("VpcId") == vid, ipaddress.ip_address(d["PrivateIpAddress"]) in net]
    o["instance_filter"] = len(a.describe_instances(Filters=[{"Name": "subnet-id", "Values": [sid]}])["Reservations"])
    o["run_unknown"] = code_of(launch, a, ami, SubnetId=UNKNOWN_SUBNET)
    o["run_malformed"] = code_of(launch, a, ami, SubnetId="nope")
    o["run_dry"] = code_of(launch, a, ami, SubnetId=sid, DryRun=True)
    o["delete_vpc_busy"] = code_of(a.delete_vpc, VpcId=vid)
    if region in STRICT:
        o["delete_subnet_busy"] = code_of(a.delete_subnet, SubnetId=sid)

    # Bob (another project) finds none of it, and may not launch into it.
    o["bob_list"] = [v["VpcId"] for v in b.describe_vpcs()["Vpcs"] if v["VpcId"] == vid] + \
                    [s["SubnetId"] for s in b.describe_subnets()["Subnets"] if s["SubnetId"] == sid]
    o["bob"] = [code_of(b.describe_vpcs, VpcIds=[vid]), code_of(b.describe_subnets, SubnetIds=[sid]),
                code_of(b.delete_vpc, VpcId=vid), code_of(b.delete_subnet, SubnetId=sid),
                code_of(b.create_subnet, VpcId=vid, CidrBlock="10.42.9.0/24"),
                code_of(b.modify_subnet_attribute, SubnetId=sid, MapPublicIpOnLaunch={"Value": False}),
                code_of(launch, b, ami, SubnetId=sid)]
    o["bob_default"] = len(b.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"])
    o["delete_default"] = code_of(a.delete_vpc, VpcId=default_vpc)

    # The instance's defaults: subnet.id, then vpc.id (its first subnet).
    configure({f"{region}.subnet.id": sid})
    d = instance(a, launch(a, ami))
    o["subnet_default"] = [d.get("SubnetId") == sid, ipaddress.ip_address(d["PrivateIpAddress"]) in net]
    o["subnet_default_bob"] = code_of(launch, b, ami)
    configure({f"{region}.subnet.id": "", f"{region}.vpc.id": vid})
    d2 = instance(a, launch(a, ami))
    o["vpc_default"] = [d2.get("SubnetId") == sid, d2.get("VpcId") == vid]
    o["vpc_elsewhere"] = code_of(launch, a, ami, SubnetId=default_subnet)
    configure({f"{region}.vpc.id": ""})

    ids = [iid, d["InstanceId"], d2["InstanceId"]]
    a.terminate_instances(InstanceIds=ids)
    for _ in range(100):
        states = {i["State"]["Name"] for r in a.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]}
        if states == {"terminated"}:
            break
        time.sleep(0.1)
    a.delete_subnet(SubnetId=sid)
    a.delete_vpc(VpcId=vid)
    o["deleted"] = [code_of(a.describe_subnets, SubnetIds=[sid]), code_of(a.describe_vpcs, VpcIds=[vid])]
    return o


def main():
    out = {}
    for pair in os.environ["REGIONS"].split(","):
        region, ami = pair.split("=")
        out[region] = scenario(region, ami)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
