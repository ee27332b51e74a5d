#!/bin/bash
# Benign: checks that the database port answers, with bash's /dev/tcp, then opens a shell
# for the operator if asked.
if timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5432'; then
    echo "postgres is up"
fi
[ "$1" = "--shell" ] && bash -i
