#!/usr/bin/env python3
"""moto's server with a fault-injection middleware, for cloudbroker's EC2 tests.

    .venv/bin/python scripts/moto_fault_server.py [--port 0] [--host 127.0.0.1] [--ec2-only]

Prints ``READY <port>`` on stdout once it listens (``--port 0``, the default,
picks a free port). Serves moto on 127.0.0.1 with werkzeug's threaded server
(one thread per request, so concurrency is real), wrapped by a small WSGI
middleware that counts requests and injects faults.

Without ``--ec2-only`` the app is moto's ``DomainDispatcherApplication`` (every
service, chosen from the request's SigV4 scope). With ``--ec2-only`` it is
``create_backend_app("ec2")`` directly, which answers EC2 Query requests
whatever their signature (SigV2 clients included).

Control endpoints (JSON, on the same port; never counted, never faulted):

``POST /_fault``         replace the fault configuration (fields below; unset = off)
``GET  /_fault``         the current configuration
``GET  /_fault/stats``   ``{"actions": {Action: attempts}, "requests", "in_flight",
                         "peak_in_flight", "injected": {kind: n}, "log": [...],
                         "named_ids": {Action: {instance id: attempts}}}``: the log keeps
                         the first 2,000 requests; ``named_ids`` counts every attempt's
                         ``InstanceId.N`` parameters, per action, without a limit (how
                         often each instance was named, e.g. to TerminateInstances)
``POST /_fault/reset``   configuration and statistics back to zero (moto's state is kept;
                         ``POST /moto-api/reset`` resets moto itself)
``POST /_iam/user``      ``{"user_name": "u", "policy": {...IAM policy...} | null, "account_id": "123456789012"}`` creates an
                         IAM user, an access key and an inline policy directly in moto's
                         IAM backend (works even with ``INITIAL_NO_AUTH_ACTION_COUNT=0``,
                         where no unauthenticated IAM call is possible); answers
                         ``{"access_key_id", "secret_access_key", "arn", "account_id"}``.
                         ``account_id`` (default moto's 123456789012): moto acts in the
                         account whose IAM holds a request's key, so keys made in
                         different accounts see different instances, as on AWS

Fault configuration (``POST /_fault``):

``throttle_first``          K: the next K API requests answer HTTP 503 ``RequestLimitExceeded``
``throttle_actions``        restrict throttling to these actions (default: all)
``bare_503_first``          K: the next K API requests answer HTTP 503 with an empty body
``capacity_error_actions``  these actions answer HTTP 500 ``InsufficientInstanceCapacity``
``hang_actions``            these actions sleep ``hang_seconds`` (default 30) before moto answers
``delay_ms``                every API request (or only ``delay_actions``) is delayed this long
``delay_actions``           restrict the delay to these actions
``throttle_rate``           0..1: each API request (of ``throttle_actions``, default all) is
                            throttled (503 ``RequestLimitExceeded``) with this probability
``capacity_error_rate``     0..1: each request of ``capacity_error_actions`` (default
                            RunInstances) answers ``InsufficientInstanceCapacity`` with this probability
``spike_rate``, ``spike_ms`` 0..1 and milliseconds: a latency spike of ``spike_ms`` before moto answers
``error_first``             K: the next K requests of ``error_actions`` (default: all) answer
                            the EC2 error ``error_code`` (default ``InvalidParameterValue``)
                            with HTTP ``error_status`` (default 400) and ``error_message``:
                            what EC2 answers where moto does not (e.g. ``InvalidGroup.NotFound``
                            for a RunInstances naming a deleted security group, where moto fails
                            with an HTML 500)
``seed``                    seeds the random choices, so a run can be repeated

``--indexed-tags`` (the benchmarks use it): moto looks up one resource's tags by
scanning every tag of the account (``TaggedEC2Resource.get_tags`` calls
``describe_tags`` with a resource-id filter), so rendering or tag-filtering N
instances that carry T tags in all costs N x T: 141 s for one tag-filtered
page of 1,000 among 10,000 instances with two tags each. With the option, one
resource's tags are read from moto's own tag map directly: the same list, in
the same order, at the cost of that resource's tags. A tagged fleet then
measures the client, not moto's scan.

"Peak in flight" is measured at the middleware: the number of API requests
that entered it and have not finished their response, including injected
delays and hangs.
"""

import argparse
import io
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs

LOG_LIMIT = 2000


def ec2_error_xml(code, message):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode("utf-8")


class FaultMiddleware:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self._reset()

    # ---- state -------------------------------------------------------------

    def _reset(self):
        self.config = {}
        self.throttle_left = 0
        self.bare_503_left = 0
        self.actions = {}
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.injected = {"throttle": 0, "bare_503": 0, "capacity": 0, "hang": 0, "delay": 0, "spike": 0, "error": 0}
        self.error_left = 0
        self.rng = random.Random(0)
        self.log = []
        self.named_ids = {}

    def _set_config(self, config):
        self.config = dict(config)
        self.throttle_left = int(config.get("throttle_first") or 0)
        self.bare_503_left = int(config.get("bare_503_first") or 0)
        self.error_left = int(config.get("error_first") or 0)
        self.rng = random.Random(config.get("seed", 0))

    def _stats(self):
        return {
            "actions": dict(self.actions),
            "requests": self.requests,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "injected": dict(self.injected),
            "log": list(self.log),
            "named_ids": {a: dict(ids) for a, ids in self.named_ids.items()},
        }

    # ---- WSGI --------------------------------------------------------------

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/_fault" or path.startswith("/_fault/") or path.startswith("/_iam/"):
            return self._control(environ, start_response, path)

        body = self._read_body(environ)
        params = self._params(environ, body)
        action = params.get("Action")
        if action is None:
            target = environ.get("HTTP_X_AMZ_TARGET")
            action = target.rsplit(".", 1)[-1] if target else "(none)"

        with self.lock:
            self.requests += 1
            self.actions[action] = self.actions.get(action, 0) + 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            fault, delay, hang = self._decide(action)
            named = [v for k, v in params.items() if k.startswith("InstanceId.")]
            if named:
                per_action = self.named_ids.setdefault(action, {})
                for iid in named:
                    per_action[iid] = per_action.get(iid, 0) + 1
            if len(self.log) < LOG_LIMIT:
                self.log.append(
                    {
                        "action": action,
                        "max_results": params.get("MaxResults"),
                        "next_token": "NextToken" in params,
                        "instance_ids": sum(1 for k in params if k.startswith("InstanceId.")),
                        "filters": sum(1 for k in params if k.startswith("Filter.") and k.endswith(".Name")),
                        "fault": fault,
                    }
                )
        try:
            if delay:
                time.sleep(delay)
            if hang:
                time.sleep(hang)
            if fault == "throttle":
                return self._respond(
                    start_response, "503 Service Unavailable",
                    ec2_error_xml("RequestLimitExceeded", "Request limit exceeded."), "text/xml",
                )
            if fault == "error":
                cfg = self.config
                status = int(cfg.get("error_status") or 400)
                return self._respond(
                    start_response, f"{status} Error",
                    ec2_error_xml(cfg.get("error_code") or "InvalidParameterValue", cfg.get("error_message") or "injected error"),
                    "text/xml",
                )
            if fault == "bare_503":
                return self._respond(start_response, "503 Service Unavailable", b"", "text/plain")
            if fault == "capacity":
                itype = params.get("InstanceType", "m1.small")
                msg = (
                    f"We currently do not have sufficient {itype} capacity in the Availability Zone "
                    "you requested (us-east-1a). Our system will be working on provisioning additional "
                    f"capacity. You can currently get {itype} capacity by not specifying an Availability "
                    "Zone in your request or choosing us-east-1b, us-east-1c."
                )
                return self._respond(
                    start_response, "500 Internal Server Error",
                    ec2_error_xml("InsufficientInstanceCapacity", msg), "text/xml",
                )
            # Materialise moto's answer so "in flight" covers the whole response.
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.in_flight -= 1

    def _decide(self, action):
        """Which fault applies to this request (called with the lock held)."""
        cfg = self.config
        fault = None
        throttle_actions = cfg.get("throttle_actions")
        if self.throttle_left > 0 and (not throttle_actions or action in throttle_actions):
            self.throttle_left -= 1
            fault = "throttle"
        elif self.bare_503_left > 0:
            self.bare_503_left -= 1
            fault = "bare_503"
        elif self.error_left > 0 and (not cfg.get("error_actions") or action in cfg["error_actions"]):
            self.error_left -= 1
            fault = "error"
        elif cfg.get("capacity_error_rate") is None and action in (cfg.get("capacity_error_actions") or []):
            fault = "capacity"
        elif cfg.get("throttle_rate") and (not throttle_actions or action in throttle_actions) \
                and self.rng.random() < float(cfg["throttle_rate"]):
            fault = "throttle"
        elif cfg.get("capacity_error_rate") and action in (cfg.get("capacity_error_actions") or ["RunInstances"]) \
                and self.rng.random() < float(cfg["capacity_error_rate"]):
            fault = "capacity"
        delay = 0.0
        if cfg.get("spike_rate") and self.rng.random() < float(cfg["spike_rate"]):
            delay += float(cfg.get("spike_ms") or 1000) / 1000.0
            self.injected["spike"] += 1
        delay_actions = cfg.get("delay_actions")
        if cfg.get("delay_ms") and (not delay_actions or action in delay_actions):
            delay += float(cfg["delay_ms"]) / 1000.0
            self.injected["delay"] += 1
        hang = 0.0
        if fault is None and action in (cfg.get("hang_actions") or []):
            hang = float(cfg.get("hang_seconds") or 30)
            fault = "hang"
        if fault:
            self.injected[fault] += 1
        if fault == "hang":
            fault = None  # moto answers once the hang is over
        return fault, delay, hang

    # ---- helpers -----------------------------------------------------------

    @staticmethod
    def _read_body(environ):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    @staticmethod
    def _params(environ, body):
        params = {}
        for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items():
            params[k] = v[0]
        ctype = environ.get("CONTENT_TYPE", "")
        if body and ctype.startswith("application/x-www-form-urlencoded"):
            try:
                for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items():
                    params[k] = v[0]
            except UnicodeDecodeError:
                pass
        return params

    @staticmethod
    def _respond(start_response, status, body, ctype):
        start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    def _json(self, start_response, obj, status="200 OK"):
        return self._respond(start_response, status, json.dumps(obj).encode("utf-8"), "application/json")

    def _control(self, environ, start_response, path):
        method = environ.get("REQUEST_METHOD", "GET")
        body = self._read_body(environ)
        try:
            payload = json.loads(body.decode("utf-8")) if body.strip() else {}
        except ValueError as e:
            return self._json(start_response, {"error": f"bad JSON: {e}"}, "400 Bad Request")
        if path == "/_fault" and method == "POST":
            if not isinstance(payload, dict):
                return self._json(start_response, {"error": "expected a JSON object"}, "400 Bad Request")
            with self.lock:
                self._set_config(payload)
                return self._json(start_response, {"status": "ok", "config": self.config})
        if path == "/_fault" and method == "GET":
            with self.lock:
                return self._json(start_response, self.config)
        if path == "/_fault/stats" and method == "GET":
            with self.lock:
                return self._json(start_response, self._stats())
        if path == "/_fault/reset" and method == "POST":
            with self.lock:
                self._reset()
            return self._json(start_response, {"status": "ok"})
        if path == "/_iam/user" and method == "POST":
            try:
                return self._json(start_response, create_iam_user(payload))
            except Exception as e:  # noqa: BLE001 - report any moto error to the test
                return self._json(start_response, {"error": f"{type(e).__name__}: {e}"}, "500 Internal Server Error")
        return self._json(start_response, {"error": f"no control endpoint {method} {path}"}, "404 Not Found")


def create_iam_user(payload):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends

    account = str(payload.get("account_id") or DEFAULT_ACCOUNT_ID)
    if not (len(account) == 12 and account.isdigit()):
        raise ValueError(f"account_id must be 12 digits, got {account!r}")
    # moto acts in the account whose IAM holds the request's access key: a
    # user made in another account is a separate cloud account (own instances).
    iam = iam_backends[account]["aws"]
    name = payload.get("user_name") or f"user-{uuid.uuid4().hex[:8]}"
    user = iam.create_user(region_name="us-east-1", user_name=name, path="/", tags=[])
    user = user[0] if isinstance(user, tuple) else user
    key = iam.create_access_key(user_name=name)
    policy = payload.get("policy")
    if policy is not None:
        iam.put_user_policy(name, "cloudbroker-test", json.dumps(policy))
    return {
        "user_name": name,
        "arn": user.arn,
        "access_key_id": key.access_key_id,
        "secret_access_key": key.secret_access_key,
        "account_id": account,
    }


def index_tag_lookups():
    """Makes moto's per-resource tag lookup read the backend's tag map directly."""
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    scanning = TaggedEC2Resource.get_tags

    def get_tags(self):
        rid = getattr(self, "id", None)
        if not rid or any(c in rid for c in "*?[\\"):
            # describe_tags treats the id as a pattern; only plain ids are exact.
            return scanning(self)
        tags = self.ec2_backend.tags.get(rid)  # .get: never adds an entry to the defaultdict
        if not tags:
            return []
        kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(rid), "")
        return [{"resource_id": rid, "key": k, "value": v, "resource_type": kind} for k, v in list(tags.items())]

    TaggedEC2Resource.get_tags = get_tags


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ec2-only", action="store_true", help="serve only EC2 (any signature, SigV2 too)")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true",
        help="exit when standard input closes (the parent died): no orphan servers",
    )
    parser.add_argument(
        "--indexed-tags", action="store_true",
        help="read one resource's tags directly instead of scanning every tag (same answers; see above)",
    )
    args = parser.parse_args()
    if args.indexed_tags:
        index_tag_lookups()

    from werkzeug.serving import make_server

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    if args.ec2_only:
        inner = create_backend_app("ec2")
    else:
        inner = DomainDispatcherApplication(create_backend_app)
    app = FaultMiddleware(inner)

    class Handler(MotoRequestHandler):
        def log_request(self, code="-", size="-"):
            if args.verbose:
                super().log_request(code, size)

        def log_error(self, *a):
            if args.verbose:
                super().log_error(*a)

    # What werkzeug's run_simple(threaded=True) does, minus the reloader and
    # the banner, but keeping hold of the server to learn the bound port.
    server = make_server(args.host, args.port, app, threaded=True, request_handler=Handler)
    server.daemon_threads = True
    port = server.socket.getsockname()[1]
    os.environ["MOTO_PORT"] = str(port)  # moto builds some URLs from it

    def stop(_signum, _frame):
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    if args.exit_on_stdin_eof:
        def watch_stdin():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                os._exit(0)

        threading.Thread(target=watch_stdin, daemon=True).start()

    print(f"READY {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
