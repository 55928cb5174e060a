"""kombu's Redis transport with one repair: a channel whose connection is closed fails with a
connection error, not an AttributeError, so a worker survives a Redis restart.

With celery 5.7.0 and kombu 5.7.0, a worker that loses Redis while a task is in flight and a fetch
is outstanding (a busy worker's usual state) exited with "Unrecoverable error: AttributeError
('NoneType' object has no attribute 'hostname')" instead of reconnecting. On the lost connection,
Celery first collects it: closing its channel fails on the dead socket and the transport forgets its
connection. Celery then closes it again, and the channel's second close wants a Redis client to put
the unacknowledged message back; building one reads the host from the forgotten connection. The
in-flight task's ack later takes the same way. Celery and kombu tolerate connection errors at both
places (the close is best effort, the ack is logged "Couldn't ack"), not an AttributeError.

Raising a connection error there keeps kombu's own handling: the message stays in Redis's unacked
set and is delivered again after the visibility timeout (a run that finds its event done does
nothing), and the worker reconnects.

`install()` (called by `make_celery`) points kombu's redis:// and rediss:// schemes at this
transport. Choosing it by Celery's `broker_transport` setting instead would make the broker URL read
`worker.redis_transport:Transport://...` in logs and in Flower, whose queue views pick their broker
client by the URL's scheme and would fail.
"""

from __future__ import annotations

import kombu.transport
import redis
from kombu.transport import redis as kombu_redis

SCHEMES = ("redis", "rediss")


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict:
        if self.connection.client is None:  # the connection was closed: nothing to reach
            raise redis.ConnectionError("the broker connection of this channel is closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    """Have this process's kombu connections to redis:// and rediss:// URLs use `Transport`."""
    name = f"{__name__}:{Transport.__name__}"
    for scheme in SCHEMES:
        kombu.transport.TRANSPORT_ALIASES[scheme] = name
        # kombu caches a scheme's class on first use: drop one cached before this call.
        if kombu.transport._transport_cache.get(scheme) not in (None, Transport):
            del kombu.transport._transport_cache[scheme]
