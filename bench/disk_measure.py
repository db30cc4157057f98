"""What one disk measure of an execution costs (services/runner/disk.py) on this machine's Docker engine:
the engine's size of a container's writable layer (every execution, every DISK_CHECK_INTERVAL), and the
du of its volumes in a runner-owned container (only an execution with volumes), for a container that
wrote 64 MiB in 1,000 files to each.  Median and worst of 15 measures each, and the machine's load.

    PYTHONPATH=. .venv/bin/python bench/disk_measure.py
"""
import io
import os
import statistics
import time

import docker

from services.runner.disk import DiskWatch
from tests.support import MEASURE_IMAGE, measure_image

FILL = ("for d in /fill /scratch; do mkdir -p $d; i=0; while [ $i -lt 1000 ]; do "
        "head -c 65536 /dev/zero > $d/f$i; i=$((i+1)); done; done; sleep 600")


def timed(call, times=15):
    took = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took), max(took)


def main():
    client = docker.from_env(version="auto", timeout=120)
    measure_image(client)
    image = "stevedore-bench/disk-volume:local"
    client.images.build(fileobj=io.BytesIO(f"FROM {MEASURE_IMAGE}\nVOLUME /scratch\n".encode()), tag=image, rm=True)
    container = client.containers.run(image, ["sh", "-c", FILL], detach=True, labels={"stevedore.bench": "disk"})
    try:
        while "f999" not in container.exec_run(["ls", "/scratch"]).output.decode():
            time.sleep(0.5)
        watch = DiskWatch(client, 1 << 40, "bench", 1, measure_image=MEASURE_IMAGE)
        layer = timed(lambda: watch.layer(container))
        watch.measure(container)  # finds its volumes
        watch._remove_measurer()

        def apart():
            watch._measured_apart()
            watch._remove_measurer()

        volumes = timed(apart)
        used = watch.measure(container)
        watch._remove_measurer()
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; measured {used} bytes")
        print(f"writable layer (SizeRw): median {layer[0]:.1f} ms, worst {layer[1]:.1f} ms")
        print(f"volumes (du in a measuring container, made, run, read, removed): median {volumes[0]:.1f} ms, "
              f"worst {volumes[1]:.1f} ms")
    finally:
        container.remove(force=True, v=True)
        client.images.remove(image, noprune=True)


if __name__ == "__main__":
    main()
