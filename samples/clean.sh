#!/bin/sh
echo "nightly backup"
tar czf /var/backups/etc.tgz /etc
