"""Holds LOCKFILE's lock as a live nntrain run does (an fcntl lock on the whole file, the
file naming its holder: "PID N on host test"), for the tests of the outputs' locks; touches
LOCKFILE.held once it holds it, then sleeps (120 s) until the test stops it by its PID.
Usage: python3 hold_lock.py LOCKFILE"""
import fcntl
import os
import sys
import time

fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666)
fcntl.lockf(fd, fcntl.LOCK_EX)
os.write(fd, b"PID %d on host test\n" % os.getpid())
open(sys.argv[1] + ".held", "w").close()
time.sleep(120)
