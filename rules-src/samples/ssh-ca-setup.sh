#!/bin/sh
# Benign: installs the company SSH CA key for sshd (not into authorized_keys) and tightens
# the permissions of the existing authorized_keys.
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIvigilfixtureplaceholderca ca@example.com" > /etc/ssh/ca.pub
echo "TrustedUserCAKeys /etc/ssh/ca.pub" >> /etc/ssh/sshd_config
chmod 600 ~/.ssh/authorized_keys
