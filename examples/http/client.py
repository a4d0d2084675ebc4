#!/usr/bin/env python3
"""Append to a meowmx stream over HTTP, then follow the log live.

Usage: client.py BASE_URL STREAM_ID [COUNT]

Appends COUNT "Placed" events (default 3) to order-STREAM_ID, one at a time
with the expected version, then follows the whole log (Server-Sent Events
from /events/live) until it has received them, resuming with Last-Event-ID
if the connection drops, and prints each event as a JSON line. Only the
Python standard library is used. Set MEOWMX_TOKEN to send a bearer token.
"""

import json
import os
import sys
import urllib.error
import urllib.request


def request(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    token = os.environ.get("MEOWMX_TOKEN")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    return req


def append(base, stream_id, expected, event_type, data):
    """Appends one event; returns the recorded event, or raises on an error."""
    body = {"expected_version": expected, "events": [{"type": event_type, "data": data}]}
    try:
        with urllib.request.urlopen(request("POST", f"{base}/streams/order/{stream_id}", body)) as resp:
            return json.load(resp)["events"][0]
    except urllib.error.HTTPError as e:
        err = json.load(e)["error"]
        raise RuntimeError(f"{e.code} {err['code']}: {err['message']}") from None


def follow(base, last_id=None):
    """Yields (id, event) from the live tail of the log, from after last_id."""
    headers = {"Accept": "text/event-stream"}
    if last_id:
        headers["Last-Event-ID"] = last_id
    with urllib.request.urlopen(request("GET", f"{base}/events/live", headers=headers)) as resp:
        event_id, data = None, []
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if line == "":
                if data:
                    yield event_id, json.loads("\n".join(data))
                event_id, data = None, []
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                data.append(line[6:])


def main():
    base, stream_id = sys.argv[1].rstrip("/"), sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    expected = "no_stream"
    wanted = set()
    for i in range(count):
        recorded = append(base, stream_id, expected, "Placed", {"line": i})
        expected = recorded["version"]
        wanted.add(recorded["event_id"])
    # A stale expected version is refused with 409 version_conflict.
    try:
        append(base, stream_id, 0 if count > 1 else "no_stream", "Late", {})
        raise SystemExit("a stale expected version was accepted")
    except RuntimeError as e:
        if "version_conflict" not in str(e):
            raise
    last_id = None
    while wanted:
        try:
            for event_id, event in follow(base, last_id):
                last_id = event_id
                print(json.dumps(event), flush=True)
                wanted.discard(event["event_id"])
                if not wanted:
                    break
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, ConnectionError):
            continue  # reconnect with Last-Event-ID


if __name__ == "__main__":
    main()
