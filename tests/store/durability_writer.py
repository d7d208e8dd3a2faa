"""The writer process of the durability test (run as a script; the test SIGKILLs it).

Opens a tinydb store with tiny snapshot thresholds (so log folds interleave with the kills) and
runs concurrent tasks doing creates, updates and deletes, each task on its own keys so every
key's writes are sequential. Before each write it prints ``T <op> <key> <digest>`` (attempted)
and after the store acknowledges it ``A <op> <key> <revision> <digest>``, with one unbuffered
``os.write`` per line, so whatever was printed before the kill is in the output file.

usage: durability_writer.py DATA_DIR SEED [TASKS] [KEYS_PER_TASK] [SNAPSHOT_EVERY]
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sys

import orjson

from clusterctl.store.tinydb_store import TinyDBStore


def digest(value: dict) -> str:
    return hashlib.sha1(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def emit(line: str) -> None:
    os.write(1, (line + "\n").encode())


async def run(data_dir: str, seed: int, tasks: int, keys_per_task: int, snapshot_every: int) -> None:
    store = TinyDBStore(data_dir, snapshot_log_records=snapshot_every, snapshot_on_close=False)
    await store.start()
    emit(f"READY {store.revision}")
    rng = random.Random(seed)

    async def worker(task: int) -> None:
        serial = 0
        while True:
            key = f"/registry/core/pods/t{task}/k{rng.randrange(keys_per_task)}"
            current = await store.get(key)  # this task is the key's only writer: get is exact
            serial += 1
            value = {"task": task, "serial": serial, "seed": seed, "pad": "x" * rng.randrange(10, 3000)}
            if current is None:
                emit(f"T create {key} {digest(value)}")
                item = await store.create(key, value)
                emit(f"A create {key} {item.mod_revision} {digest(value)}")
            elif rng.random() < 0.25:
                emit(f"T delete {key} -")
                item = await store.delete(key, expected_revision=current.mod_revision)
                emit(f"A delete {key} {item.mod_revision} -")
            else:
                emit(f"T update {key} {digest(value)}")
                item = await store.update(key, value, expected_revision=current.mod_revision)
                emit(f"A update {key} {item.mod_revision} {digest(value)}")

    await asyncio.gather(*(worker(task) for task in range(tasks)))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    asyncio.run(run(arguments[0], int(arguments[1]),
                    int(arguments[2]) if len(arguments) > 2 else 8,
                    int(arguments[3]) if len(arguments) > 3 else 40,
                    int(arguments[4]) if len(arguments) > 4 else 60))
