#!/bin/bash
# The lb service's healthcheck (docker-compose.yml): HAProxy's monitor URI answers 200. No curl or
# wget in the HAProxy image, so bash's /dev/tcp speaks the HTTP/1.0 request itself. A file rather
# than an inline `bash -c '…'`: some engines (podman 4.3's Docker API) re-split healthcheck
# arguments at spaces, which would silently turn an inline script into `bash -c exec` (always 0).
exec 3<>/dev/tcp/127.0.0.1/8404 || exit 1
printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
IFS= read -r -t 2 status <&3 || exit 1
[[ $status == *" 200 "* ]]
