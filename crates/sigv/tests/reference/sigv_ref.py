# Independent reference implementation (Python stdlib only) used to produce
# the expected constants in crates/sigv/tests/{v2,v4_auth}.rs.
import hmac, hashlib, base64
from urllib.parse import quote
enc = lambda s: quote(s.encode(), safe='-_.~')
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"      # tests/v2.rs
SECRET_V4 = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"   # tests/v4_auth.rs

def v2(method, host, path, params, secret, algo):
    items = sorted(params, key=lambda kv: (kv[0].encode(), kv[1].encode()))
    q = "&".join(enc(k) + "=" + enc(v) for k, v in items)
    sts = "\n".join([method, host.lower(), path, q])
    mac = hmac.new(secret.encode(), sts.encode(), algo).digest()
    return sts, base64.b64encode(mac).decode()

base = [
    ("Action", "DescribeImages"),
    ("AWSAccessKeyId", "AKIAIOSFODNN7EXAMPLE"),
    ("ImageId.1", "ami-2bb65342"),
    ("Filter.1.Name", "description"),
    ("Filter.1.Value.1", "my image *~/ \u1234 \u00e9"),
    ("zeta", "a+b=c&d"),
    ("Zeta", "upper"),
    ("SignatureVersion", "2"),
    ("Timestamp", "2011-10-03T15:19:30Z"),
    ("Version", "2016-11-15"),
]
for m, algo in (("HmacSHA256", hashlib.sha256), ("HmacSHA1", hashlib.sha1)):
    sts, sig = v2("GET", "EC2.Amazonaws.com", "/", base + [("SignatureMethod", m)], SECRET, algo)
    print(m, repr(sts)); print(m, sig)

# POST, non-default port, path
p2 = [("Action", "RunInstances"), ("AWSAccessKeyId", "AKIAIOSFODNN7EXAMPLE"),
      ("SignatureMethod", "HmacSHA256"), ("SignatureVersion", "2"),
      ("Timestamp", "2024-01-02T03:04:05Z"), ("UserData", "IyEvYmluL3NoCmVjaG8gaGk="),
      ("Version", "2016-11-15")]
sts, sig = v2("POST", "localhost:8773", "/services/Cloud", p2, SECRET, hashlib.sha256)
print("POST", repr(sts)); print("POST", sig)

# SigV4 EC2 POST
def H(k, m): return hmac.new(k, m.encode(), hashlib.sha256).digest()
body = "Action=DescribeInstances&Version=2016-11-15"
host = "ec2.us-east-1.amazonaws.com"
amz = "20240102T030405Z"
ph = hashlib.sha256(body.encode()).hexdigest()
creq = "\n".join(["POST", "/", "",
    "content-type:application/x-www-form-urlencoded; charset=utf-8",
    "host:" + host, "x-amz-date:" + amz, "",
    "content-type;host;x-amz-date", ph])
scope = "20240102/us-east-1/ec2/aws4_request"
sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
k = H(("AWS4" + SECRET_V4).encode(), "20240102"); k = H(k, "us-east-1"); k = H(k, "ec2"); k = H(k, "aws4_request")
print("V4", hmac.new(k, sts.encode(), hashlib.sha256).hexdigest())
