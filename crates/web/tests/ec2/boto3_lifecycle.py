"""The EC2 front-end driven by boto3, a client nobody here wrote.

Run by crates/web/tests/ec2.rs with EP (the /ec2 endpoint), ALICE_AK/ALICE_SK,
BOB_AK/BOB_SK. Asserts as it goes; prints a JSON summary the Rust test checks.
"""
import base64
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["EP"]
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


def client(ak, sk, region="sb"):
    return boto3.client("ec2", endpoint_url=EP, region_name=region, aws_access_key_id=ak,
                        aws_secret_access_key=sk, config=NO_RETRY)


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


alice = client(os.environ["ALICE_AK"], os.environ["ALICE_SK"])
bob = client(os.environ["BOB_AK"], os.environ["BOB_SK"])
out = {}

out["regions"] = sorted(r["RegionName"] for r in alice.describe_regions()["Regions"])
types = alice.describe_instance_types()["InstanceTypes"]
out["types"] = sorted(t["InstanceType"] for t in types)
small = alice.describe_instance_types(InstanceTypes=["t2.small"])["InstanceTypes"][0]
assert small["VCpuInfo"]["DefaultVCpus"] == 1 and small["MemoryInfo"]["SizeInMiB"] == 2048, small
out["bad_type"] = code_of(alice.describe_instance_types, InstanceTypes=["x9.huge"])
images = alice.describe_images()["Images"]
out["images"] = [i["Name"] for i in images]
ami = next(i["ImageId"] for i in images if i["Name"] == "ubuntu")
assert ami.startswith("ami-"), ami

# Launch with tags and a client token; the same token again launches nothing new.
spec = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}, {"Key": "team", "Value": "a"}]}]
r = alice.run_instances(ImageId=ami, MinCount=2, MaxCount=2, InstanceType="t2.micro", ClientToken="tok-1",
                        TagSpecifications=spec)
ids = sorted(i["InstanceId"] for i in r["Instances"])
assert len(ids) == 2 and all(i.startswith("i-") for i in ids), ids
again = alice.run_instances(ImageId=ami, MinCount=2, MaxCount=2, ClientToken="tok-1")
out["idempotent"] = sorted(i["InstanceId"] for i in again["Instances"]) == ids

# Describe: by id, by tag, by state; the Name tag and the type come back.
d = alice.describe_instances(InstanceIds=ids)
got = [i for res in d["Reservations"] for i in res["Instances"]]
assert sorted(i["InstanceId"] for i in got) == ids
names = sorted(t["Value"] for i in got for t in i["Tags"] if t["Key"] == "Name")
# The Name tag is kept as given on every instance (issue 22 item 1; it was numbered "web-0", "web-1").
assert all(i["InstanceType"] == "t2.micro" for i in got) and names == ["web", "web"], got

# The broker's reconciler (run by the test meanwhile) brings them to running.
deadline = time.time() + 20
while time.time() < deadline:
    states = {i["State"]["Name"] for res in alice.describe_instances(InstanceIds=ids)["Reservations"] for i in res["Instances"]}
    if states == {"running"}:
        break
    time.sleep(0.2)
assert states == {"running"}, states
tagged = alice.describe_instances(Filters=[{"Name": "tag:team", "Values": ["a"]}])
out["tagged"] = sum(len(res["Instances"]) for res in tagged["Reservations"])
none = alice.describe_instances(Filters=[{"Name": "tag:team", "Values": ["b"]}])
assert none["Reservations"] == [], none

# Another user sees nothing of alice's and cannot touch it.
assert bob.describe_instances()["Reservations"] == []
out["bob_terminate"] = code_of(bob.terminate_instances, InstanceIds=[ids[0]])
out["bob_describe"] = code_of(bob.describe_instances, InstanceIds=[ids[0]])

# Errors carry EC2's codes.
out["unknown_id"] = code_of(alice.describe_instances, InstanceIds=["i-0000000000000000"])
out["malformed_id"] = code_of(alice.describe_instances, InstanceIds=["bogus"])
out["bad_filter"] = code_of(alice.describe_instances, Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
out["bad_ami"] = code_of(alice.run_instances, ImageId="ami-00000000000000000", MinCount=1, MaxCount=1)
out["min_gt_max"] = code_of(alice.run_instances, ImageId=ami, MinCount=3, MaxCount=2)
out["bad_secret"] = code_of(client(os.environ["ALICE_AK"], "wrong-secret").describe_regions)
out["unknown_key"] = code_of(client("AKIAUNKNOWNKEY000000", "whatever").describe_regions)
out["unknown_region"] = code_of(client(os.environ["ALICE_AK"], os.environ["ALICE_SK"], "mars").describe_instances)

# Key pairs: created (private key once), imported, listed per user, used at launch, deleted.
k1 = alice.create_key_pair(KeyName="k1")
assert k1["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----"), k1
assert k1["KeyFingerprint"].startswith("SHA256:"), k1
pub = alice.describe_key_pairs(KeyNames=["k1"], IncludePublicKey=True)["KeyPairs"][0]["PublicKey"]
assert pub.startswith("ssh-ed25519 "), pub
alice.import_key_pair(KeyName="k2", PublicKeyMaterial=pub.encode())
out["dup_key"] = code_of(alice.create_key_pair, KeyName="k1")
out["bad_key"] = code_of(alice.import_key_pair, KeyName="k3", PublicKeyMaterial=b"not a key")
out["unknown_key_pair"] = code_of(alice.describe_key_pairs, KeyNames=["nope"])
out["bob_key_pairs"] = bob.describe_key_pairs()["KeyPairs"]
out["launch_unknown_key"] = code_of(alice.run_instances, ImageId=ami, MinCount=1, MaxCount=1, KeyName="nope")
withkey = alice.run_instances(ImageId=ami, MinCount=1, MaxCount=1, KeyName="k1")["Instances"][0]["InstanceId"]
alice.terminate_instances(InstanceIds=[withkey])
alice.delete_key_pair(KeyName="k2")
out["key_pairs"] = sorted(k["KeyName"] for k in alice.describe_key_pairs()["KeyPairs"])

# Tags after launch: set, listed, filtered on, removed; reserved keys refused; others' instances untouchable.
alice.create_tags(Resources=[ids[1]], Tags=[{"Key": "env", "Value": "prod"}])
t = alice.describe_tags(Filters=[{"Name": "resource-id", "Values": [ids[1]]}])["Tags"]
out["tags_after_create"] = sorted(f"{x['Key']}={x['Value']}" for x in t)
alice.delete_tags(Resources=[ids[1]], Tags=[{"Key": "team"}])
left = alice.describe_instances(Filters=[{"Name": "tag:team", "Values": ["a"]}])
out["team_left"] = [i["InstanceId"] for res in left["Reservations"] for i in res["Instances"]]
out["reserved_tag"] = code_of(alice.create_tags, Resources=[ids[1]], Tags=[{"Key": "cloudbroker:user", "Value": "bob"}])
out["bob_tags"] = code_of(bob.create_tags, Resources=[ids[1]], Tags=[{"Key": "x", "Value": "y"}])
out["tagged_id"] = ids[1]

# State changes answer with EC2's codes.
s = alice.stop_instances(InstanceIds=[ids[0]])["StoppingInstances"][0]
out["stop"] = [s["PreviousState"]["Name"], s["CurrentState"]["Name"], s["CurrentState"]["Code"]]
t = alice.terminate_instances(InstanceIds=ids)["TerminatingInstances"]
out["terminate"] = sorted(x["CurrentState"]["Name"] for x in t)

# 250 more (ids and withkey are 3 terminated ones still visible), then paginate: every instance exactly once.
for n in (100, 100, 50):
    alice.run_instances(ImageId=ami, MinCount=n, MaxCount=n)
seen = []
for page in alice.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 100}):
    seen += [i["InstanceId"] for res in page["Reservations"] for i in res["Instances"]]
out["paginated"] = len(seen)
out["paginated_unique"] = len(set(seen))

# A presigned URL (botocore signs the method it is told: GET here) works until it expires.
url = alice.generate_presigned_url("describe_regions", Params={}, ExpiresIn=60, HttpMethod="GET")
with urllib.request.urlopen(url) as resp:
    out["presigned"] = resp.status
url = alice.generate_presigned_url("describe_regions", Params={}, ExpiresIn=1, HttpMethod="GET")
time.sleep(2)
try:
    urllib.request.urlopen(url)
    out["presigned_expired"] = 200
except urllib.error.HTTPError as e:
    out["presigned_expired"] = e.code
    out["presigned_expired_body"] = e.read().decode()


# SigV2 (HmacSHA256 and HmacSHA1), instance named in the path.
def sigv2(method, secret, params, path="/ec2/sb"):
    u = urllib.parse.urlparse(EP)
    host = u.netloc
    params = dict(params, AWSAccessKeyId=os.environ["ALICE_AK"], SignatureVersion="2", SignatureMethod=method,
                  Timestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), Version="2016-11-15")
    q = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in sorted(params.items()))
    sts = f"GET\n{host}\n{path}\n{q}"
    digest = hashlib.sha256 if method == "HmacSHA256" else hashlib.sha1
    sig = base64.b64encode(hmac.new(secret.encode(), sts.encode(), digest).digest()).decode()
    req = f"{u.scheme}://{host}{path}?{q}&Signature={urllib.parse.quote(sig, safe='')}"
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


for m in ["HmacSHA256", "HmacSHA1"]:
    status, body = sigv2(m, os.environ["ALICE_SK"], {"Action": "DescribeInstances"})
    assert status == 200 and "<reservationSet>" in body, (m, status, body)
status, body = sigv2("HmacSHA256", "wrong", {"Action": "DescribeInstances"})
out["sigv2_bad"] = [status, "AuthFailure" in body]

print(json.dumps(out))
