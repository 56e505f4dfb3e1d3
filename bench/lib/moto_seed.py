#!/usr/bin/env python3
"""Launches N instances into a running moto with boto3 and prints one id.

    moto_seed.py ENDPOINT N

The instances stand for the benchmark user's VMs (what the broker answers
from its records), so DescribeInstances answers the same number of items.
"""
import sys

import boto3

endpoint, n = sys.argv[1], int(sys.argv[2])
ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
ids = []
while len(ids) < n:
    k = min(100, n - len(ids))
    r = ec2.run_instances(ImageId="ami-12c6146b", MinCount=k, MaxCount=k, InstanceType="t2.micro")
    ids += [i["InstanceId"] for i in r["Instances"]]
print(ids[0])
