"""A phase's messages out and their replies back, one reply at a time.

Flower's ``Grid.send_and_receive`` pushes every message at once and returns
every reply together when the last one is in (or the time is up), polling the
SuperLink every 3 s (0.1 s in a simulation). ``stream`` instead yields each
reply as soon as it is pulled, so the caller folds replies one by one and keeps
none of them, and it keeps at most ``window`` messages in the SuperLink at once.

The window is for simulations. Their SuperLink keeps messages in memory, in
the process that also runs the ServerApp, and Flower's simulation engine finds
each node's next message by scanning every stored message, for every node,
every 0.1 s: nodes x messages. With 1,000 nodes and a round's 1,000 messages
stored at once, that scan kept most of a core busy (py-spy on the
``flwr-simulation`` process, ``bench/scale.py``). A deployed SuperLink stores
messages in a database that each SuperNode queries for its own, so there
every message goes out at once.
"""

import time
from collections import deque
from collections.abc import Iterable, Iterator

from flwr.app import Message
from flwr.serverapp import Grid
from flwr.superlink.grid.inmemory_grid import InMemoryGrid

# messages in flight per CPU of the simulation's Ray cluster: enough to keep
# its ClientApp workers busy while a reply is pulled and the next message is
# picked up by the engine (every 0.1 s)
IN_FLIGHT_PER_CPU = 8
# without a Ray cluster to ask (it starts with the first message): 2 CPUs' worth
IN_FLIGHT_DEFAULT = 2 * IN_FLIGHT_PER_CPU
# seconds between pulls while no reply comes, doubled each time from the first
# to the last: in a simulation a pull is a look into a dict; a deployed
# SuperLink answers it from its database, which its SuperNodes write to
POLLS = {"simulation": (0.02, 1.0), "deployment": (0.2, 3.0)}


def window_for(grid: Grid) -> int | None:
    """How many messages ``stream`` keeps in ``grid``'s SuperLink at once:
    ``IN_FLIGHT_PER_CPU`` per CPU of the Ray cluster running a simulation, no
    limit (None) for a deployed SuperLink."""
    if not isinstance(grid, InMemoryGrid):
        return None
    try:
        import ray  # the simulation's backend; the ServerApp shares its process
    except ImportError:
        return IN_FLIGHT_DEFAULT
    if not ray.is_initialized():
        return IN_FLIGHT_DEFAULT
    cpus = int(ray.cluster_resources().get("CPU", 0))
    return max(IN_FLIGHT_DEFAULT, IN_FLIGHT_PER_CPU * cpus)


def stream(
    grid: Grid,
    messages: Iterable[Message],
    timeout: float,
    window: int | None = None,
) -> Iterator[Message]:
    """Push ``messages`` in their order, at most ``window`` in flight (default:
    ``window_for(grid)``), and yield each reply as it arrives, until every
    pushed message has its reply or ``timeout`` seconds have passed. Messages
    not yet pushed by then are not sent (a caller sees no reply from their
    nodes)."""
    window = window or window_for(grid)
    first, last = POLLS[
        "simulation" if isinstance(grid, InMemoryGrid) else "deployment"
    ]
    queue = deque(messages)
    waiting: set[str] = set()
    end = time.monotonic() + timeout
    poll = first
    while queue or waiting:
        room = len(queue) if window is None else window - len(waiting)
        if room > 0 and queue:
            batch = [queue.popleft() for _ in range(min(room, len(queue)))]
            waiting.update(i for i in grid.push_messages(batch) if i)
        replies = list(grid.pull_messages(waiting)) if waiting else []
        for reply in replies:
            waiting.discard(reply.metadata.reply_to_message_id)
            yield reply
        left = end - time.monotonic()
        if left <= 0:
            return
        if replies:
            poll = first
        elif waiting:
            time.sleep(min(poll, left))
            poll = min(2 * poll, last)
