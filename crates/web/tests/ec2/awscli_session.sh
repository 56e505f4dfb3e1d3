#!/usr/bin/env bash
# One awscli session, written for AWS's exact CLI syntax, against a broker's
# EC2 front (crates/web/tests/ec2_awscli.rs and ec2_chain.rs run it): a VPC,
# a subnet and a security group; an instance launched into them; a volume
# created, attached and snapshotted; an image made from the instance and
# launched; then everything cleaned up. Each step prints one line:
#   OK: <Action> <detail>
#   SKIPPED: <Action> not implemented        (the front answers InvalidAction)
#   SKIPPED: <Action> needs <what>           (an earlier step was skipped)
# and the script stops at the first other failure (exit 1, with the CLI's
# error). Environment: AWS (the aws executable), EP (the /ec2 endpoint),
# REGION, ZONE, IMAGE (a DescribeImages name), AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY. No sleeps beyond short polls.
set -u

cli() { "$AWS" --endpoint-url "$EP" --region "$REGION" --output text ec2 "$@"; }

ERR=$(mktemp)
trap 'rm -f "$ERR"' EXIT

# run ACTION args...: runs `aws ec2 args...` in this shell, its output in
# $OUT. Returns 0 on success, 2 when the action is not implemented
# (SKIPPED printed); exits the script on any other error.
OUT=""
run() {
  local action=$1
  shift
  if OUT=$(cli "$@" 2>"$ERR"); then
    return 0
  fi
  if grep -q "(InvalidAction)" "$ERR"; then
    echo "SKIPPED: $action not implemented"
    return 2
  fi
  echo "FAILED: $action" >&2
  cat "$ERR" >&2
  exit 1
}

ok() { echo "OK: $*"; }

# poll WHAT CMD...: until CMD's output is non-empty and not "None" (60 s at most).
poll() {
  local what=$1
  shift
  for _ in $(seq 1 300); do
    local got
    got=$("$@" 2>/dev/null)
    if [ -n "$got" ] && [ "$got" != "None" ]; then
      printf '%s' "$got"
      return 0
    fi
    sleep 0.2
  done
  echo "FAILED: timed out waiting for $what" >&2
  exit 1
}

state_is() { # state_is ID STATE: prints the id when the instance is in STATE
  local s
  s=$(cli describe-instances --instance-ids "$1" --query 'Reservations[0].Instances[0].State.Name' 2>/dev/null)
  [ "$s" = "$2" ] && echo "$1"
}

run DescribeImages describe-images --filters "Name=name,Values=$IMAGE" --query 'Images[0].ImageId' || exit 1
AMI=$OUT
ok DescribeImages "$AMI"

VPC="" ; SUBNET="" ; SG=""
if run CreateVpc create-vpc --cidr-block 10.20.0.0/16 --query 'Vpc.VpcId'; then
  VPC=$OUT
  ok CreateVpc "$VPC"
else
  VPC=""
fi
if [ -n "$VPC" ]; then
  if run CreateSubnet create-subnet --vpc-id "$VPC" --cidr-block 10.20.1.0/24 --availability-zone "$ZONE" --query 'Subnet.SubnetId'; then
    SUBNET=$OUT
    ok CreateSubnet "$SUBNET"
  else
    SUBNET=""
  fi
else
  echo "SKIPPED: CreateSubnet needs CreateVpc"
fi
SG_ARGS=(--group-name session-sg --description "awscli session")
[ -n "$VPC" ] && SG_ARGS+=(--vpc-id "$VPC")
if run CreateSecurityGroup create-security-group "${SG_ARGS[@]}" --query 'GroupId'; then
  SG=$OUT
  ok CreateSecurityGroup "$SG"
  if run AuthorizeSecurityGroupIngress authorize-security-group-ingress --group-id "$SG" --protocol tcp --port 22 --cidr 0.0.0.0/0; then
    ok AuthorizeSecurityGroupIngress "$SG tcp/22"
  fi
else
  SG=""
fi

LAUNCH=(run-instances --image-id "$AMI" --count 1 --instance-type t2.micro --query 'Instances[0].InstanceId')
[ -n "$SUBNET" ] && LAUNCH+=(--subnet-id "$SUBNET")
[ -n "$SG" ] && LAUNCH+=(--security-group-ids "$SG")
run RunInstances "${LAUNCH[@]}" || exit 1
I1=$OUT
poll "$I1 running" state_is "$I1" running >/dev/null
ok RunInstances "$I1 ${SUBNET:-no-subnet} ${SG:-no-group}"
if [ -n "$SUBNET" ]; then
  GOT=$(cli describe-instances --instance-ids "$I1" --query 'Reservations[0].Instances[0].SubnetId')
  [ "$GOT" = "$SUBNET" ] || { echo "FAILED: $I1 is in subnet $GOT, not $SUBNET" >&2; exit 1; }
  ok DescribeInstances "$I1 in $SUBNET"
fi

run CreateVolume create-volume --size 1 --availability-zone "$ZONE" --query 'VolumeId' || exit 1
VOL=$OUT
poll "$VOL available" cli describe-volumes --volume-ids "$VOL" --query "Volumes[?State=='available'].VolumeId" >/dev/null
ok CreateVolume "$VOL"
run AttachVolume attach-volume --volume-id "$VOL" --instance-id "$I1" --device /dev/sdf || exit 1
poll "$VOL in-use" cli describe-volumes --volume-ids "$VOL" --query "Volumes[?State=='in-use'].VolumeId" >/dev/null
ok AttachVolume "$VOL $I1 /dev/sdf"

SNAP=""
if run CreateSnapshot create-snapshot --volume-id "$VOL" --description "awscli session" --query 'SnapshotId'; then
  SNAP=$OUT
  poll "$SNAP completed" cli describe-snapshots --snapshot-ids "$SNAP" --query "Snapshots[?State=='completed'].SnapshotId" >/dev/null
  ok CreateSnapshot "$SNAP"
else
  SNAP=""
fi

IMG="" ; I2=""
if run CreateImage create-image --instance-id "$I1" --name "session-image-$RANDOM" --query 'ImageId'; then
  IMG=$OUT
  poll "$IMG available" cli describe-images --image-ids "$IMG" --query "Images[?State=='available'].ImageId" >/dev/null
  ok CreateImage "$IMG"
  run RunInstances run-instances --image-id "$IMG" --count 1 --instance-type t2.micro --query 'Instances[0].InstanceId' || exit 1
  I2=$OUT
  poll "$I2 running" state_is "$I2" running >/dev/null
  ok RunInstances "$I2 from $IMG"
else
  IMG=""
  echo "SKIPPED: RunInstances of an image made from an instance needs CreateImage"
fi

# Clean up.
run TerminateInstances terminate-instances --instance-ids $I1 $I2 || exit 1
poll "$I1 terminated" state_is "$I1" terminated >/dev/null
[ -n "$I2" ] && poll "$I2 terminated" state_is "$I2" terminated >/dev/null
ok TerminateInstances "$I1 $I2"
# The volume is let go when its instance ends (the reconciler records it).
poll "$VOL detached" cli describe-volumes --volume-ids "$VOL" --query "Volumes[?State=='available'].VolumeId" >/dev/null
run DeleteVolume delete-volume --volume-id "$VOL" || exit 1
ok DeleteVolume "$VOL"
if [ -n "$SNAP" ]; then
  run DeleteSnapshot delete-snapshot --snapshot-id "$SNAP" && ok DeleteSnapshot "$SNAP"
fi
if [ -n "$IMG" ]; then
  run DeregisterImage deregister-image --image-id "$IMG" || exit 1
  ok DeregisterImage "$IMG"
fi
if [ -n "$SG" ]; then
  run DeleteSecurityGroup delete-security-group --group-id "$SG" && ok DeleteSecurityGroup "$SG"
fi
if [ -n "$SUBNET" ]; then
  run DeleteSubnet delete-subnet --subnet-id "$SUBNET" && ok DeleteSubnet "$SUBNET"
fi
if [ -n "$VPC" ]; then
  run DeleteVpc delete-vpc --vpc-id "$VPC" && ok DeleteVpc "$VPC"
fi
echo "DONE"
