"""How a Kafka's cost per message grows with what one partition holds: the soak's question, without the pipeline.

One message per produce request (so one stored batch each, as a low, steady intake makes them) while a reader follows
the partition's tail, in blocks; each block reports messages/s and, when the broker's process is known (the embedded
one), its CPU per message. A broker whose fetch cost does not depend on what it holds gives flat rows.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import TopicPartition

from broker.bench.e2e import cpu_seconds
from broker.kafka.admin import ensure_topics
from broker.kafka.clients import GROUP_FETCH_WAIT_MS, producer, reader

STALL_S = 60  # no message read for this long: the broker has stalled, and the probe says so rather than hang


@dataclass(frozen=True, slots=True)
class Block:
    stored: int  # messages (and batches) the partition holds at the end of the block
    messages_per_s: float
    broker_cpu_ms_per_message: float | None


async def follow_tail(bootstrap: str, *, blocks: int, per_block: int, size: int, broker_pid: int | None,
                      topic: str = "mash-bench.growth") -> list[Block]:
    await ensure_topics(bootstrap, [(topic, 1)])
    tp = TopicPartition(topic, 0)
    out, follower = producer(bootstrap), reader(bootstrap, fetch_wait_ms=GROUP_FETCH_WAIT_MS)
    await out.start()
    await follower.start()
    follower.assign([tp])
    await follower.seek_to_end(tp)
    start = await follower.position(tp)
    received = 0

    async def follow() -> None:
        nonlocal received
        while True:
            batch = await follower.getmany(timeout_ms=100)
            received += sum(len(records) for records in batch.values())

    task = asyncio.create_task(follow())
    body, rows, sent = b"x" * size, [], 0
    try:
        for _ in range(blocks):
            cpu0, t0 = cpu_seconds(broker_pid) if broker_pid else None, time.monotonic()
            for _ in range(per_block):
                await (await out.send(topic, body))  # acknowledged before the next: one batch per message
            sent += per_block
            waited_for, last = time.monotonic(), received
            while received < sent:
                if received != last:
                    waited_for, last = time.monotonic(), received
                elif time.monotonic() - waited_for > STALL_S:
                    raise RuntimeError(f"the reader got {received} of {sent} messages and nothing more in {STALL_S} s")
                await asyncio.sleep(0.005)
            seconds = time.monotonic() - t0
            cpu1 = cpu_seconds(broker_pid) if broker_pid else None
            cpu = (cpu1 - cpu0) * 1000 / per_block if cpu0 is not None and cpu1 is not None else None
            rows.append(Block(start + sent, round(per_block / seconds, 1), None if cpu is None else round(cpu, 3)))
    finally:
        task.cancel()
        await out.stop()
        await follower.stop()
    return rows
