#!/bin/sh
# Test fixture for Linux_Backdoor_SshKeyInject_1: what cloud worms append to root's keys.
# The key is a placeholder, not a real public key.
mkdir -p /root/.ssh
echo "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCvigilfixtureplaceholderkey attacker@c2" >>/root/.ssh/authorized_keys
chattr +ia /root/.ssh/authorized_keys
