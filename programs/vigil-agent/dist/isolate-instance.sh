#!/bin/sh
# A vigil response hook: isolate this EC2 instance when a finding arrives, by replacing its
# security groups with one isolation group (one that allows nothing, or only your forensics
# access). The finding's JSON comes on stdin (vigil [[actions]]); the instance id and region
# are read from it with jq, and the change is made with the AWS CLI, whose credentials come
# from the standard chain (on EC2: the instance profile, which needs
# ec2:ModifyInstanceAttribute on itself).
#
#   [[actions]]
#   name = "isolate"
#   min_severity = "CRITICAL"
#   command = ["/usr/local/libexec/vigil/isolate-instance.sh", "sg-0123456789abcdef0"]
#   timeout_secs = 60
#
# Exit codes: 0 isolated; 2 usage; 3 the finding has no usable instance id (not on EC2, and
# none configured); else the AWS CLI's.
set -eu

sg="${1:-}"
case "$sg" in
    sg-[0-9a-f]*) ;;
    *) echo "usage: isolate-instance.sh ISOLATION_SECURITY_GROUP_ID (sg-...) < finding.json" >&2; exit 2 ;;
esac

finding=$(cat)
id=$(printf '%s' "$finding" | jq -r '.resource.instance_id // empty')
region=$(printf '%s' "$finding" | jq -r '.resource.region // empty')
case "$id" in
    i-[0-9a-f]*) ;;
    *) echo "the finding names no EC2 instance id; nothing isolated" >&2; exit 3 ;;
esac

set -- ec2 modify-instance-attribute --instance-id "$id" --groups "$sg"
if [ -n "$region" ]; then
    set -- --region "$region" "$@"
fi
aws "$@"
echo "isolated $id into $sg after $(printf '%s' "$finding" | jq -r '"\(.threat) on \(.file.path) (finding \(.id))"')"
