"""Topics with time-based retention on a real broker, for the loss tests (tests/e2e_loss.rs).

usage:
  kafka_retention.py create BROKERS TOPIC RETENTION_MS
      one partition, `cleanup.policy=delete`, `retention.ms=RETENTION_MS`
  kafka_retention.py produce BROKERS TOPIC FILE AGE_MS
      every line of FILE as one message whose timestamp is AGE_MS in the past, so
      retention deletes it at the broker's next maintenance when AGE_MS > RETENTION_MS
  kafka_retention.py log-start BROKERS TOPIC
      prints the partition's log start offset (low watermark) and end offset

tansu 0.6.0 implements retention (its sqlite engine deletes records whose timestamp is
older than `retention.ms` at each maintenance, at start and every 10 minutes) but not
DeleteRecords (a `todo!()` in both its sqlite and memory engines), so retention it is.
"""

import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create(brokers: str, topic: str, retention_ms: str) -> None:
    admin = AdminClient({"bootstrap.servers": brokers})
    config = {"cleanup.policy": "delete", "retention.ms": retention_ms}
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config=config)])
    for future in futures.values():
        future.result(timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline:
        if topic in admin.list_topics(topic, timeout=10).topics:
            return
        time.sleep(0.2)
    raise SystemExit(f"topic {topic} did not appear")


def produce(brokers: str, topic: str, path: str, age_ms: str) -> None:
    # One record per batch, as in kafka_produce.py (tansu 0.6.0 skips the rest of a batch
    # when a fetch starts inside it).
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "batch.num.messages": 1})
    failures = []

    def on_delivery(error, _message):
        if error is not None:
            failures.append(str(error))

    timestamp = int(time.time() * 1000) - int(age_ms)
    with open(path, "rb") as lines:
        for line in lines:
            producer.produce(topic, value=line.rstrip(b"\n"), timestamp=timestamp, on_delivery=on_delivery)
            producer.poll(0)
    remaining = producer.flush(60)
    if remaining or failures:
        raise SystemExit(f"{remaining} undelivered, failures: {failures[:5]}")


def log_start(brokers: str, topic: str) -> None:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "kafka-retention-probe"})
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.close()
    print(low, high)


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    {"create": create, "produce": produce, "log-start": log_start}[command](*args)


if __name__ == "__main__":
    main()
