-- Where a VM is in its cloud's network: the subnet and VPC the cloud placed
-- it in (EC2's subnetId and vpcId), as the cloud answered the launch. One
-- row per VM the cloud said so of; none for clouds without VPCs.
CREATE TABLE vm_networks (
    vm_id     TEXT PRIMARY KEY,
    subnet_id TEXT NOT NULL,
    vpc_id    TEXT NOT NULL
);
