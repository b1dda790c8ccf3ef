"""Reading a topic raw in tests: every record, or the first `want`, without a consumer group."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, ConsumerRecord


async def read_topic(bootstrap: str, topic: str, want: int | None = None) -> list[ConsumerRecord]:
    """Records from the beginning until `want` are read (or 40 s pass), else until the topic stops giving (3 empty
    polls in a row): the embedded broker's end offsets are not reliable, so the end is found by polling. With `want`
    empty polls never end the read: on a loaded host a producer's records can lag the first polls."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        out: list[ConsumerRecord] = []
        empty = 0
        for _ in range(100):
            batch = await consumer.getmany(timeout_ms=400)
            got = [m for msgs in batch.values() for m in msgs]
            out += got
            empty = 0 if got else empty + 1
            if (len(out) >= want) if want is not None else empty >= 3:
                break
        return out
    finally:
        await consumer.stop()
