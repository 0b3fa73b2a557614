"""The shared-machine hint: when threads plus busy cores exceed the machine, say what to do."""
import subprocess
import sys
import time

from metalearn._util.threads import busy_cores, thread_advice


def test_advice_only_when_threads_and_busy_cores_exceed_the_machine():
    assert thread_advice(2, 0.0, cores=2) is None
    assert thread_advice(1, 1.0, cores=2) is None           # one thread cannot wait for another
    assert thread_advice(2, None, cores=2) is None          # unknown: say nothing
    assert thread_advice(2, 1.0, cores=4) is None           # room enough
    hint = thread_advice(2, 1.0, cores=2)
    assert "train.threads=1" in hint and "OMP_WAIT_POLICY=PASSIVE" in hint and "1.0 of the 2 cores" in hint


def test_busy_cores_sees_a_busy_process():
    idle = busy_cores(0.3)
    if idle is None:
        return  # no /proc/stat here
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = busy_cores(0.5)
    finally:
        proc.kill()
        proc.wait()
    assert busy >= 0.7, (idle, busy)
