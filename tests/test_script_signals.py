"""Stop signals in the scripts' Python, in one process, each sent by the test to itself at the
moment it means: a stop that comes while scaling.sh (its run_one) or scaling_study.py (its
child) starts a child process stops that child once it is known, rather than leaving it running
without a parent; and one that comes as study_outputs.write_all cleans up is handled once the
clean-up is whole: the files in place, the locks let go."""
import contextlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts")
sys.path.insert(0, SCRIPTS)
import nn_outputs  # noqa: E402
import scaling_study  # noqa: E402
import study_outputs  # noqa: E402

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]  # a child that runs until stopped


def scaling_sh():
    """scripts/scaling.sh's Python part (its table_py), its functions loaded without running it."""
    with open(os.path.join(SCRIPTS, "scaling.sh")) as f:
        source = re.search(r"<<'PY' \|\| true\n(.*?)\nPY\n", f.read(), re.S).group(1)
    namespace, argv = {"__name__": "scaling_sh"}, sys.argv
    sys.argv = ["-c", SCRIPTS]  # its argv[1]: where it finds nn_outputs.py and study_outputs.py
    try:
        exec(compile(source, "scripts/scaling.sh (table_py)", "exec"), namespace)
    finally:
        sys.argv = argv
    return namespace


class StopSignals(unittest.TestCase):
    """The stop signals caught as the scripts catch them (study_outputs.catch_stop_signals),
    this process's own handlers put back afterwards."""

    def setUp(self):
        self.handlers = {sig: signal.getsignal(sig) for sig in nn_outputs.STOP_SIGNALS}
        study_outputs.catch_stop_signals()
        self.root = tempfile.mkdtemp(prefix="script_signals-", dir=os.environ.get("NN_TEST_TMP"))

    def tearDown(self):
        for sig, handler in self.handlers.items():
            signal.signal(sig, handler)
        shutil.rmtree(self.root)


class StopWhileStarting(StopSignals):
    """SIGTERM inside subprocess.Popen, the child started but not yet known to the caller. Until
    2026-12-07 the handler raised there, before the caller had the child: mpirun went on
    running without a parent, and nothing stopped it."""

    def setUp(self):
        super().setUp()
        self.children = []

    def tearDown(self):
        for child in self.children:  # left running (the bug): not left behind by the test too
            if child.poll() is None:
                child.kill()
                child.wait()
        super().tearDown()

    def popen_then_stop(self):
        real = subprocess.Popen

        def popen(*args, **kwargs):
            child = real(*args, **kwargs)
            self.children.append(child)
            os.kill(os.getpid(), signal.SIGTERM)  # the stop, the child started
            return child
        return mock.patch.object(subprocess, "Popen", popen)

    def assert_stopped(self, start):
        """START() ends in Stopped (SIGTERM), its child asked to stop (SIGTERM, so its stop
        signals are not blocked: it inherits the mask) and waited for."""
        with self.popen_then_stop(), self.assertRaises(study_outputs.Stopped) as caught:
            start()
        self.assertEqual(caught.exception.signum, signal.SIGTERM)
        self.assertEqual(len(self.children), 1)
        self.assertEqual(self.children[0].returncode, -signal.SIGTERM,
                         "the child was not stopped by SIGTERM and waited for")

    def test_scaling_sh_run_one(self):
        run_one = scaling_sh()["run_one"]
        with open(os.path.join(self.root, "np1.log"), "wb") as log:
            self.assert_stopped(lambda: run_one(SLEEPER, log))

    def test_scaling_study_child(self):
        self.assert_stopped(lambda: scaling_study.child(SLEEPER))

    def test_scaling_study_child_uncaptured(self):  # the plotting scripts' way
        self.assert_stopped(lambda: scaling_study.child(SLEEPER, capture=False))


class StopAsWriteAllEnds(StopSignals):
    """study_outputs.save (the plotting scripts' ending), two files of an earlier run replaced,
    SIGTERM sent at a chosen step; afterwards no FILE.tmp and no FILE.lock, and the Stopped
    path's one line and exit status."""

    # the study's CSV (study_outputs.csv_is_ours), a row of an old run and of a new one
    OLD, NEW = ((study_outputs.CSV_HEADERS[0] + "\n" + ",".join([run] * len(study_outputs.CSV_FIELDS)) + "\n").encode()
                for run in ("old", "new"))

    def setUp(self):
        super().setUp()
        self.paths = [os.path.join(self.root, name) for name in ("a.csv", "b.csv")]
        for path in self.paths:
            with open(path, "wb") as f:
                f.write(self.OLD)

    def save_stopped(self, method, signal_after):
        """save() of the new files with nn_outputs.Temporary.METHOD sending SIGTERM as its first
        call ends (SIGNAL_AFTER: after the real one) or begins; its message line."""
        real, sent = getattr(nn_outputs.Temporary, method), []

        def then_stop(t):
            if signal_after:
                real(t)
            if not sent:
                sent.append(t.path)
                os.kill(os.getpid(), signal.SIGTERM)
            if not signal_after:
                real(t)
        stderr = io.StringIO()
        pairs = [(study_outputs.csv_output(path), self.NEW) for path in self.paths]
        with mock.patch.object(nn_outputs.Temporary, method, then_stop), contextlib.redirect_stderr(stderr), \
                self.assertRaises(SystemExit) as caught:
            study_outputs.save("test", pairs)
        self.assertEqual(caught.exception.code, 128 + signal.SIGTERM)
        self.assertEqual(sorted(os.listdir(self.root)), ["a.csv", "b.csv"], "a FILE.tmp or FILE.lock left")
        return stderr.getvalue().strip()

    def contents(self):
        result = []
        for path in self.paths:
            with open(path, "rb") as f:
                result.append(f.read())
        return result

    def test_stop_during_the_clean_up_comes_once_it_is_done(self):
        """SIGTERM as the first FILE.tmp is abandoned, both files in place: write_all's hold
        puts it off until the locks are let go too (without it, it was handled between
        abandon_all and the locks' release, and the lock files were left)."""
        line = self.save_stopped("abandon", signal_after=True)
        self.assertEqual(self.contents(), [self.NEW, self.NEW])
        self.assertEqual(line, f"test: stopped by SIGTERM; wrote {', '.join(self.paths)}")

    def test_stop_between_the_installs_comes_once_both_are_in_place(self):
        """SIGTERM as the first file is put in place: the second is put in place too, then the
        stop is handled (without the hold, a.csv was new and b.csv old)."""
        line = self.save_stopped("install", signal_after=True)
        self.assertEqual(self.contents(), [self.NEW, self.NEW])
        self.assertEqual(line, f"test: stopped by SIGTERM; wrote {', '.join(self.paths)}")

    def test_stop_while_writing_the_first_file(self):
        """SIGTERM as the first file is synced: nothing put in place, both old files whole."""
        line = self.save_stopped("seal", signal_after=False)
        self.assertEqual(self.contents(), [self.OLD, self.OLD])
        self.assertEqual(line, "test: stopped by SIGTERM; no output changed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
