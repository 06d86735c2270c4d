"""The master/worker channel, authenticated by a shared token (zmq; locust only inside secure(): runner only).

Locust's master and workers talk over ZeroMQ (a ROUTER on the master, a DEALER per worker). With a token,
both ends speak ZeroMQ's CURVE mechanism instead of its default NULL one: every key pair is derived from
the token (HMAC-SHA256 with a fixed label per role), so
- a worker proves the token: the master's ZAP handler accepts only the worker public key the token
  derives, so a worker without the token, or with a wrong one, fails the handshake before Locust sees
  a byte from it (no client_ready, no spawn message, no config, no locustfile, no tenant keys);
- the master proves the token: the worker connects to the server public key the token derives, and
  only the holder of the matching secret key completes the handshake (the worker checks this before
  it joins, and refuses the master otherwise);
- after the handshake every message is encrypted and authenticated (CurveZMQ), so the tenant keys in
  the config do not cross the network in clear.
The token never leaves either machine: only proofs derived from it do.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import gevent
import zmq.green as zmq
from zmq.utils import z85

log = logging.getLogger("opskit.loadtest")
TOKEN_ENV = "OPSKIT_LOADTEST_TOKEN"
ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq asks a socket's context who may connect
_FAILED = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL


class ChannelRefused(Exception):
    """The other end of the channel did not prove the token (or demanded one this side lacks)."""


@dataclass(frozen=True, repr=False)
class Keys:
    """The CURVE key pairs (Z85 text) both ends derive from one token."""

    server_public: bytes
    server_secret: bytes
    worker_public: bytes
    worker_secret: bytes


def derive(token: str) -> Keys:
    def pair(label: bytes) -> tuple[bytes, bytes]:
        secret = z85.encode(hmac.new(token.encode(), label, hashlib.sha256).digest())
        return zmq.curve_public(secret), secret

    server_public, server_secret = pair(b"opskit loadtest master v1")
    worker_public, worker_secret = pair(b"opskit loadtest worker v1")
    return Keys(server_public, server_secret, worker_public, worker_secret)


def _zap_handler(context: Any, keys: Keys) -> None:
    """Answer libzmq's ZAP requests (RFC 27): only the worker key derived from the token may connect."""
    sock = context.socket(zmq.REP)
    sock.linger = 0
    sock.bind(ZAP_ENDPOINT)
    expected = z85.decode(keys.worker_public)
    while True:
        frames = sock.recv_multipart()
        version, request_id, _domain, address, _identity, mechanism = frames[:6]
        credentials = frames[6:]
        ok = mechanism == b"CURVE" and len(credentials) == 1 and hmac.compare_digest(credentials[0], expected)
        if not ok:
            log.warning("refused a worker from %s: it did not prove the token", address.decode(errors="replace"))
        sock.send_multipart([version, request_id, b"200" if ok else b"400",
                             b"OK" if ok else b"wrong token", b"", b""])


def _watch_refusals(sock: Any) -> None:
    """Log the handshakes the master refused (a worker speaking without any token never reaches ZAP)."""
    from zmq.utils.monitor import recv_monitor_message

    monitor = sock.get_monitor_socket(_FAILED)
    while True:
        event = recv_monitor_message(monitor)
        log.warning("refused a worker connection: the handshake failed (no token or a wrong one; event %s)",
                    event.get("event"))


def master_token(bind: str, *, workers: int, remote: bool) -> str | None:
    """The token a master's workers must prove, taken out of this process's environment (the locustfile
    has no business reading it): the run's; one made up for the run when every worker is local; None
    without workers, or for remote workers on loopback without a token (Locust's plain channel). The
    channel is made CURVE here when there is a token. A bind off loopback without a token is refused."""
    from opskit.loadtest.safety import is_loopback

    token = os.environ.pop(TOKEN_ENV, None) or None
    if not workers:
        return None
    if token is None and not is_loopback(f"http://{bind}"):
        raise ValueError(f"--master-bind {bind}: remote workers join only with a token "
                         f"(--token-file F or {TOKEN_ENV}); without one, bind 127.0.0.1")
    if token is None and not remote:
        token = secrets.token_urlsafe(32)
    if token is not None:
        secure(token)
    return token


def secure(token: str) -> None:
    """Make this process's Locust master and worker sockets CURVE, keyed by token (before any runner
    is created). Locust has no hook for its sockets, so its `rpc` name is pointed at subclasses of its
    own Server and Client that set the CURVE options before they bind or connect."""
    from locust import runners as locust_runners
    from locust.rpc import zmqrpc

    keys = derive(token)

    class TokenServer(zmqrpc.Server):
        """Locust's master socket: CURVE server, its ZAP handler bound before the socket listens."""

        def __init__(self, host: str, port: int) -> None:
            zmqrpc.BaseSocket.__init__(self, zmq.ROUTER, self.ipv4_only(host, port))
            sock = self.socket
            gevent.spawn(_zap_handler, sock.context, keys)
            gevent.sleep(0)  # the handler binds before the first handshake can ask it
            sock.curve_server = True
            sock.curve_secretkey = keys.server_secret
            sock.curve_publickey = keys.server_public
            sock.zap_domain = b"opskit-loadtest"
            gevent.spawn(_watch_refusals, sock)
            # as Locust's own Server from here on
            if port == 0:
                self.port = sock.bind_to_random_port(f"tcp://{host}")
            else:
                try:
                    sock.bind(f"tcp://{host}:{int(port)}")
                    self.port = port
                except zmq.ZMQError as e:
                    raise zmqrpc.RPCError(f"Socket bind failure: {e}") from None

    class TokenClient(zmqrpc.Client):
        """Locust's worker socket: CURVE client with the token's keys."""

        def __init__(self, host: str, port: int, identity: str) -> None:
            zmqrpc.BaseSocket.__init__(self, zmq.DEALER, self.ipv4_only(host, port))
            curve_client(self.socket, keys)
            self.socket.setsockopt(zmq.IDENTITY, identity.encode())
            self.socket.connect(f"tcp://{host}:{int(port)}")

    locust_runners.rpc = SimpleNamespace(Server=TokenServer, Client=TokenClient)  # type: ignore[assignment]


def curve_client(sock: Any, keys: Keys) -> None:
    """A DEALER's CURVE options: the master key it expects, its own key pair."""
    sock.curve_serverkey = keys.server_public
    sock.curve_publickey = keys.worker_public
    sock.curve_secretkey = keys.worker_secret


def probe(host: str, port: int, token: str | None, timeout_s: float) -> None:
    """Before a worker joins: connect, and wait for the master to complete the handshake (CURVE with the
    token's keys, or plain without one). Raises ChannelRefused when the master fails it; waits while the
    master is not up yet (as Locust's worker does), up to timeout_s."""
    sock: Any = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    if token is not None:
        curve_client(sock, derive(token))
    from zmq.utils.monitor import recv_monitor_message

    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | _FAILED | zmq.EVENT_DISCONNECTED)
    sock.connect(f"tcp://{host}:{int(port)}")
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not monitor.poll(left * 1000):
                raise ChannelRefused(f"no master answered at {host}:{port} in {timeout_s:g} s")
            event = recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return
            if token is None:
                raise ChannelRefused(f"the master at {host}:{port} wants a token: give this worker the run's "
                                     f"token (--token-file F or {TOKEN_ENV})")
            raise ChannelRefused(f"the master at {host}:{port} did not prove the token (it has another "
                                 "token or none); refusing to join it")
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
