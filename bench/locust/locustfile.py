"""Locust load test for Skiff (issue 21; seed 002's load tests), against the local cluster's proxy.

Users:
- ``Producer``: ``POST /api/{queue}`` with a body carrying the time it was sent (``sentAt``, ns).
- ``PlainConsumer``: long-polls ``GET /api/{queue}?timeout=5000`` (the message is deleted as it
  is handed out).
- ``AckConsumer``: receives in acknowledged mode (``visibility``), then acks the receipt with
  ``DELETE /api/{queue}/messages/{receipt}``.

Every delivered message also records an ``E2E`` sample, named after the consumer: now minus the
``sentAt`` in its body, in ms (producers and consumers run in this process tree, on one clock).

Headless (what ``make loadtest`` runs, writing CSV and HTML under bench/out/locust):
    locust -f bench/locust/locustfile.py --headless -u 30 -r 10 -t 60s --host http://127.0.0.1:8080
With the web UI (then open http://localhost:8089):
    locust -f bench/locust/locustfile.py --host http://127.0.0.1:8080

Environment: LOCUST_QUEUE (default ``locust``), SKIFF_API_KEY (sent as a bearer token),
LOCUST_PAYLOAD_BYTES (padding per message, default 100).
"""

import json
import os
import time

from locust import FastHttpUser, between, constant, events, task

QUEUE = os.environ.get("LOCUST_QUEUE", "locust")
PAYLOAD = "x" * int(os.environ.get("LOCUST_PAYLOAD_BYTES", "100"))
HEADERS = {"Content-Type": "application/json"}
if os.environ.get("SKIFF_API_KEY"):
    HEADERS["Authorization"] = "Bearer " + os.environ["SKIFF_API_KEY"]


def record_end_to_end(name: str, body: bytes) -> None:
    """An ``E2E`` sample from the ``sentAt`` a producer put in the body."""
    try:
        sent_at = json.loads(body)["sentAt"]
    except (ValueError, KeyError, TypeError):
        events.request.fire(request_type="E2E", name=name, response_time=0, response_length=0,
                            exception=ValueError("a message without sentAt"), context={})
        return
    events.request.fire(request_type="E2E", name=name, response_time=(time.time_ns() - sent_at) / 1e6,
                        response_length=len(body), exception=None, context={})


class Producer(FastHttpUser):
    weight = 2
    wait_time = between(0.01, 0.05)

    @task
    def send(self):
        body = json.dumps({"sentAt": time.time_ns(), "pad": PAYLOAD})
        with self.client.post(f"/api/{QUEUE}", data=body, headers=HEADERS, name="POST /api/[queue]", catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"send answered {response.status_code}: {response.text[:200]}")


class PlainConsumer(FastHttpUser):
    weight = 1
    wait_time = constant(0)

    @task
    def receive(self):
        with self.client.get(f"/api/{QUEUE}?timeout=5000", headers=HEADERS, name="GET /api/[queue]", catch_response=True) as response:
            if response.status_code == 200:
                record_end_to_end("plain GET", response.content)
            elif response.status_code != 204:
                response.failure(f"receive answered {response.status_code}: {response.text[:200]}")


class AckConsumer(FastHttpUser):
    weight = 1
    wait_time = constant(0)

    @task
    def receive_and_ack(self):
        with self.client.get(f"/api/{QUEUE}?timeout=5000&visibility=30000", headers=HEADERS,
                             name="GET /api/[queue]?visibility", catch_response=True) as response:
            if response.status_code == 204:
                return
            if response.status_code != 200:
                response.failure(f"receive answered {response.status_code}: {response.text[:200]}")
                return
            receipt = response.headers.get("Skiff-Receipt")
            if not receipt:
                response.failure("an acknowledged receive without Skiff-Receipt")
                return
            content = response.content
        record_end_to_end("acknowledged GET + ack", content)
        with self.client.delete(f"/api/{QUEUE}/messages/{receipt}", headers=HEADERS, name="DELETE /api/[queue]/messages/[receipt]",
                                catch_response=True) as ack:
            if ack.status_code != 204:
                ack.failure(f"ack answered {ack.status_code}: {ack.text[:200]}")
