"""scripts/nn_outputs.py (the outputs rule of the Python scripts) step by step, in one
process, nothing racing it: what happens between a script's lock at start and its write at
the end (scaling.sh locks --out, runs for minutes, then writes its table)."""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import nn_outputs  # noqa: E402

ALL_OURS = lambda path: True  # noqa: E731  the worst case: any REAL.tmp looks like a killed run's


class Place(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="nn_outputs-", dir=os.environ.get("NN_TEST_TMP"))
        os.chdir(self.root)
        os.mkdir("d")
        self.lock = None

    def tearDown(self):
        if self.lock is not None:
            self.lock.release()
        os.chdir("/")
        shutil.rmtree(self.root)

    def open(self, path):
        return nn_outputs.open_temporary(f"--out {path}", path, ALL_OURS, "a table", lock=self.lock)

    def test_written_where_nothing_moved(self):
        self.lock = nn_outputs.lock("--out d/t.md", "d/t.md")
        t = self.open("d/t.md")
        t.file.write(b"table\n")
        t.seal()
        t.install()
        with open("d/t.md") as f:
            self.assertEqual(f.read(), "table\n")
        self.assertEqual(sorted(os.listdir("d")), ["t.md", "t.md.lock"])

    def test_directory_made_anew_keeps_the_other_runs_temporary(self):
        """The directory moved away and made anew after the lock: another run may hold the
        new one's lock and be writing d/t.md.tmp there. It was taken for a killed run's and
        removed (until 2026-12-07)."""
        self.lock = nn_outputs.lock("--out d/t.md", "d/t.md")
        os.rename("d", "d.old")
        os.mkdir("d")
        with open("d/t.md.tmp", "w") as f:
            f.write("another run's table, half written")
        with self.assertRaises(nn_outputs.Changed) as caught:
            self.open("d/t.md")
        self.assertIn("its directory is not the one this run started in", str(caught.exception))
        with open("d/t.md.tmp") as f:
            self.assertEqual(f.read(), "another run's table, half written")
        self.assertEqual(os.listdir("d.old"), ["t.md.lock"])

    def test_link_repointed_is_changed_not_a_traceback(self):
        """A symbolic link --out re-pointed after the lock: its lock file is another's now.
        It raised ValueError (a traceback, exit 1) until 2026-12-07."""
        os.mkdir("e")
        for d in ("d", "e"):
            open(f"{d}/t.md", "w").close()
        os.symlink("d/t.md", "link.md")
        self.lock = nn_outputs.lock("--out link.md", "link.md")
        os.unlink("link.md")
        os.symlink("e/t.md", "link.md")
        with self.assertRaises(nn_outputs.Changed):
            self.open("link.md")
        self.assertEqual(sorted(os.listdir("e")), ["t.md"])

    def test_written_into_to_the_same_size_is_changed(self):
        """The table written into in place to the same size between the open and the install
        (an editor that writes in place): its bytes tell it, and it is kept. The size alone let
        it pass until 2026-12-08."""
        with open("d/t.md", "w") as f:
            f.write("table 1\n")
        self.lock = nn_outputs.lock("--out d/t.md", "d/t.md")
        t = self.open("d/t.md")
        t.file.write(b"table 2\n")
        t.seal()
        with open("d/t.md", "r+") as f:
            f.write("notes 1\n")
        with self.assertRaises(nn_outputs.Changed) as caught:
            t.install()
        self.assertIn("is not the file this run checked", str(caught.exception))
        t.abandon()
        with open("d/t.md") as f:
            self.assertEqual(f.read(), "notes 1\n")
        self.assertEqual(sorted(os.listdir("d")), ["t.md", "t.md.lock"])

    def test_killed_runs_temporary_replaced_in_the_held_directory(self):
        with open("d/t.md.tmp", "w") as f:
            f.write("a killed run's")
        self.lock = nn_outputs.lock("--out d/t.md", "d/t.md")
        t = self.open("d/t.md")
        t.abandon()
        self.assertEqual(sorted(os.listdir("d")), ["t.md.lock"])

    def test_a_users_temporary_refused(self):
        with open("d/t.md.tmp", "w") as f:
            f.write("mine")
        self.lock = nn_outputs.lock("--out d/t.md", "d/t.md")
        with self.assertRaises(nn_outputs.Refusal) as caught:
            nn_outputs.open_temporary("--out d/t.md", "d/t.md", lambda path: False, "a table", lock=self.lock)
        self.assertIn("d/t.md.tmp exists and is not a table was writing", str(caught.exception))
        with open("d/t.md.tmp") as f:
            self.assertEqual(f.read(), "mine")


if __name__ == "__main__":
    unittest.main(verbosity=2)
