#!/usr/bin/env python3
"""Checks on nntrain's --metrics files (JSON Lines) and nneval's --metrics JSON.

Used by test_cli.sh and test_checkpoint.sh; exit status 0 when the check holds,
1 (with a message on stderr) when it does not.

  check_metrics.py cli-run METRICS
      3 epochs (1, 2, 3), every record has all the metric keys and ranks == 2,
      the last test accuracy is above 0.9, and the time shares fit together
  check_metrics.py same-losses A B
      A and B have the same 3 epochs, with the same train_loss, test_loss and
      test_accuracy to the last digit
  check_metrics.py nneval EVAL RUN
      nneval's EVAL covers the 10000 test samples; its accuracy equals the last
      test_accuracy of the training run's RUN (within 1e-12); its confusion
      matrix is 10 rows summing to 10000 with a diagonal giving that accuracy
  check_metrics.py loss-falls RUN
      RUN has epochs 1..4, the training loss falls every epoch, and the last
      test accuracy is above 0.88
  check_metrics.py fixture EXPECTED EVAL RUN
      against a checkpoint fixture's EXPECTED facts: nneval's EVAL scores it at the
      accuracy it had when written, and the resumed RUN's only epoch has the losses
      and accuracy the writing version reached, to the last digit
"""
import json
import sys


def records(path):
    return [json.loads(line) for line in open(path)]


def need(cond, what):
    if not cond:
        sys.exit(f"check_metrics.py: {what}")


def cli_run(path):
    keys = {"epoch", "train_loss", "test_loss", "test_accuracy", "epoch_seconds",
            "samples_per_second", "allreduce_seconds", "compute_seconds", "ranks", "threads"}
    recs = records(path)
    need([r["epoch"] for r in recs] == [1, 2, 3], [r["epoch"] for r in recs])
    need(all(keys <= r.keys() and r["ranks"] == 2 for r in recs), recs)
    need(recs[-1]["test_accuracy"] > 0.9, recs[-1])  # the pattern is trivially learnable
    # the barrier waits are a part of each rank's sum, and both are means over the ranks
    need(all(0 <= r["allreduce_wait_seconds"] <= r["allreduce_seconds"] + 1e-9 for r in recs),
         [(r["allreduce_wait_seconds"], r["allreduce_seconds"]) for r in recs])
    # each rank's computing is its steps less its sum and data: the mean lies between the
    # idlest and the busiest rank's, and none computed longer than the slowest epoch
    # (the JSON's 6 decimals: 2e-6 of slack)
    need(all(0 <= r["compute_min_seconds"] <= r["compute_seconds"] + 2e-6 and
             r["compute_seconds"] <= r["compute_max_seconds"] + 2e-6 and
             r["compute_max_seconds"] <= r["epoch_seconds"] + 2e-6 and
             r["allreduce_seconds"] + r["data_seconds"] + r["compute_seconds"] <= r["epoch_seconds"] + 5e-6
             for r in recs),
         [(r["compute_min_seconds"], r["compute_seconds"], r["compute_max_seconds"], r["epoch_seconds"]) for r in recs])


def same_losses(path_a, path_b):
    def load(path):
        return {r["epoch"]: (r["train_loss"], r["test_loss"], r["test_accuracy"]) for r in records(path)}
    a, b = load(path_a), load(path_b)
    need(len(a) == 3, f"{path_a}: {len(a)} epochs, expected 3")
    need(a == b, f"{path_a} and {path_b} differ: {a} != {b}")


def nneval(eval_path, run_path):
    e = json.load(open(eval_path))
    last = records(run_path)[-1]
    need(e["samples"] == 10000 and e["split"] == "test", e)
    need(abs(e["accuracy"] - last["test_accuracy"]) < 1e-12, (e["accuracy"], last["test_accuracy"]))
    m = e["confusion"]
    need(len(m) == 10 and sum(map(sum, m)) == 10000, m)
    need(abs(sum(m[i][i] for i in range(10)) / 10000 - e["accuracy"]) < 1e-12, (m, e["accuracy"]))


def loss_falls(path):
    r = records(path)
    loss = [x["train_loss"] for x in r]
    need([x["epoch"] for x in r] == [1, 2, 3, 4], r)
    need(loss[0] > loss[1] > loss[2] > loss[3], loss)
    need(r[-1]["test_accuracy"] > 0.88, r[-1])


def fixture(expected_path, eval_path, run_path):
    want = json.load(open(expected_path))
    e = json.load(open(eval_path))
    need(e["accuracy"] == want["test_accuracy_at_checkpoint"], (e["accuracy"], want))
    r = records(run_path)
    need(len(r) == 1, r)
    got = {k: r[0][k] for k in want["resumed"]}
    need(got == want["resumed"], f"resumed run {got} != {want['resumed']}")


CHECKS = {"fixture": fixture, "cli-run": cli_run, "same-losses": same_losses, "nneval": nneval, "loss-falls": loss_falls}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in CHECKS:
        sys.exit(f"usage: check_metrics.py {{{','.join(CHECKS)}}} FILE...")
    CHECKS[sys.argv[1]](*sys.argv[2:])
