"""mmer_lobes.jobs: what defines a job, when it is reused, resumed or rerun, and how a
failure stops the others. The jobs here are tiny Python scripts, not recipes."""
import json
import os
import textwrap
import time

import pytest
from speechbrain.utils.run_opts import RunOptions

from mmer_lobes.jobs import Job, JobError, run_job, run_jobs, run_option_args

# A recipe stand-in: notes whether its job record was already written, appends a line to
# runs.txt, waits for a file or sleeps when told, writes done.txt unless told not to, and
# exits with the code it is given.
SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    import yaml
    # the values as a recipe reads them: YAML (strings come quoted)
    args = {k: str(yaml.safe_load(v)).lower() if isinstance(yaml.safe_load(v), bool) else str(yaml.safe_load(v))
            for k, v in (a[2:].split("=", 1) for a in sys.argv[2:] if a.startswith("--") and "=" in a)}
    out = args["output_folder"]
    os.makedirs(out, exist_ok=True)
    record = os.path.join(out, "job.json")
    if os.path.isfile(record):
        with open(os.path.join(out, "record_at_start.json"), "w") as f:
            f.write(open(record).read())
    with open(os.path.join(out, "runs.txt"), "a") as f:
        f.write(" ".join(sys.argv[2:]) + "\\n")
    while args.get("wait_for") and not os.path.exists(args["wait_for"]):
        time.sleep(0.05)
    time.sleep(float(args.get("sleep", "0")))
    if args.get("write", "true") == "true":
        open(os.path.join(out, "done.txt"), "w").write("ok")
    sys.exit(int(args.get("code", "0")))
""")


@pytest.fixture
def recipe(tmp_path):
    script = tmp_path / "recipe.py"
    script.write_text(SCRIPT)
    hparams = tmp_path / "recipe.yaml"
    hparams.write_text("output_folder: x\nlr: 0.1\nsleep: 0\ncode: 0\nwrite: true\nwait_for: null\n")
    return str(script), str(hparams)


def _job(recipe, out, name="job", depends_on=(), run_args=(), **overrides):
    script, hparams = recipe
    return Job(name, script, hparams, overrides, str(out), ["done.txt"], run_args, depends_on)


def _runs(out):
    return open(os.path.join(out, "runs.txt")).read().splitlines()


def test_run_option_args_forwards_only_what_was_given():
    _, run_opts, overrides = RunOptions.from_command_line_args(
        ["x.yaml", "--device", "cuda:1", "--precision=fp16", "--eval_precision=bf16",
         "--data_parallel_backend", "--debug", "--jobs=2"])
    assert run_option_args(run_opts) == [
        "--data_parallel_backend", "--debug", "--device=cuda:1", "--eval_precision=bf16",
        "--precision=fp16"]
    assert overrides == "jobs: 2"
    _, run_opts, _ = RunOptions.from_command_line_args(["x.yaml", "--lr=0.1"])
    assert run_option_args(run_opts) == []


def test_reused_when_unchanged_rerun_from_scratch_when_changed(recipe, tmp_path):
    out = tmp_path / "out"
    job = _job(recipe, out, lr=0.2, run_args=["--device=cpu"])
    assert job.state() == "new"
    run_jobs([job], 1, "test")
    assert job.state() == "done" and len(_runs(out)) == 1
    assert "--device=cpu" in _runs(out)[0]
    record = json.load(open(out / "job.json"))
    assert record["finished"] is True and record["definition"]["overrides"]["lr"] == 0.2

    same = _job(recipe, out, lr=0.2, run_args=["--device=cpu"])
    run_jobs([same], 1, "test")
    assert len(_runs(out)) == 1  # reused, not run

    for changed in (_job(recipe, out, lr=0.3, run_args=["--device=cpu"]),
                    _job(recipe, out, lr=0.3, run_args=["--device=cpu", "--precision=fp16"])):
        assert changed.state() == "changed"
        (out / "stale.txt").write_text("old result")
        run_jobs([changed], 1, "test")
        assert not (out / "stale.txt").exists()  # the old folder was removed
        assert len(_runs(out)) == 1
    # Where and how visibly a job runs does not define it: reused.
    moved = _job(recipe, out, lr=0.3, run_args=["--device=cuda:1", "--noprogressbar", "--precision=fp16"])
    assert moved.state() == "done"
    assert moved.definition["run_options"] == ["--precision=fp16"]


def test_an_edited_yaml_changes_the_definition_a_comment_does_not(recipe, tmp_path):
    out = tmp_path / "out"
    run_jobs([_job(recipe, out)], 1, "test")
    text = open(recipe[1]).read()
    # A comment, and the order of the keys, change nothing the recipe computes.
    reordered = "# the learning rate below\n" + "\n".join(reversed(text.strip().splitlines())) + "\n"
    open(recipe[1], "w").write(reordered)
    assert _job(recipe, out).state() == "done"
    with open(recipe[1], "a") as handle:
        handle.write("extra: 1\n")
    assert _job(recipe, out).state() == "changed"


def test_an_edited_input_file_changes_the_definition(recipe, tmp_path):
    manifest = tmp_path / "Session1.json"
    manifest.write_text('{"u1": {"emo": "ang"}}')
    script, hparams = recipe
    job = Job("fold", script, hparams, {}, str(tmp_path / "out"), ["done.txt"], input_files=[str(manifest)])
    run_jobs([job], 1, "test")
    manifest.write_text('{"u1": {"emo": "sad"}}')
    again = Job("fold", script, hparams, {}, str(tmp_path / "out"), ["done.txt"], input_files=[str(manifest)])
    assert again.state() == "changed" and again.changes() == ["input_files"]


def test_dependents_rerun_when_a_dependency_changes(recipe, tmp_path):
    first = _job(recipe, tmp_path / "a", name="a", lr=0.1)
    second = _job(recipe, tmp_path / "b", name="b", depends_on=[first])
    run_jobs([first, second], 1, "test")
    changed_first = _job(recipe, tmp_path / "a", name="a", lr=0.5)
    dependent = _job(recipe, tmp_path / "b", name="b", depends_on=[changed_first])
    assert dependent.state() == "changed" and dependent.changes() == ["depends_on"]
    assert _job(recipe, tmp_path / "b", name="b", depends_on=[first]).state() == "done"


def test_an_unfinished_run_resumes_in_place(recipe, tmp_path):
    out = tmp_path / "out"
    job = _job(recipe, out, write=False, code=1)
    with pytest.raises(JobError):
        run_jobs([job], 1, "test")
    # What a killed run leaves: a record, not finished, and partial outputs.
    assert json.load(open(out / "job.json"))["finished"] is False
    (out / "checkpoint.txt").write_text("epoch 1")
    again = _job(recipe, out, write=False, code=1)
    assert again.state() == "interrupted"
    with pytest.raises(JobError):
        run_jobs([again], 1, "test")
    assert (out / "checkpoint.txt").read_text() == "epoch 1"  # kept for the resume
    assert len(_runs(out)) == 2


def test_results_without_a_record_are_moved_aside(recipe, tmp_path, caplog):
    out = tmp_path / "out"
    out.mkdir()
    (out / "done.txt").write_text("from an older version")
    job = _job(recipe, out)
    assert job.state() == "unrecorded" and job.changes() == ["no record"]
    with caplog.at_level("WARNING", logger="mmer_lobes.jobs"):
        run_jobs([job], 1, "test")
    assert len(_runs(out)) == 1 and job.state() == "done"
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("out.unrecorded-")]
    assert len(aside) == 1 and (aside[0] / "done.txt").read_text() == "from an older version"
    assert f"moved to {aside[0]}" in caplog.text


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_failure_is_one_line_naming_the_job_and_its_log(recipe, tmp_path, n_jobs):
    failing = _job(recipe, tmp_path / "f", name="bad fold", code=3)
    with pytest.raises(JobError) as error:
        run_jobs([failing], n_jobs, "test")
    log = os.path.join(tmp_path, "f", "stdout.log")
    assert str(error.value) == f"bad fold failed with exit code 3; its log: {log}"
    silent = _job(recipe, tmp_path / "s", name="silent fold", write=False)
    with pytest.raises(JobError) as error:
        run_jobs([silent], n_jobs, "test")
    assert str(error.value) == (f"silent fold exited without writing {tmp_path}/s/done.txt; "
                                f"its log: {tmp_path}/s/stdout.log")


def test_a_failure_stops_the_running_jobs(recipe, tmp_path):
    slow = _job(recipe, tmp_path / "slow", name="slow", sleep=60)
    # "bad" fails only once "slow" is running
    failing = _job(recipe, tmp_path / "bad", name="bad", code=1, wait_for=str(tmp_path / "slow" / "runs.txt"))
    start = time.time()
    with pytest.raises(JobError, match="^bad failed"):
        run_jobs([slow, failing], 2, "test")
    assert time.time() - start < 30
    assert slow.state() == "interrupted"  # it resumes on the next run


def test_run_job_writes_the_record_before_it_starts(recipe, tmp_path):
    import threading

    job = _job(recipe, tmp_path / "out")
    run_job(job, False, 1, threading.Event())
    at_start = json.load(open(tmp_path / "out" / "record_at_start.json"))
    assert at_start["finished"] is False and at_start["command"] == job.command
    assert at_start["definition"] == job.definition
    assert json.load(open(job.record_path))["finished"] is True


def test_one_at_a_time_a_failure_runs_nothing_after_it(recipe, tmp_path):
    failing = _job(recipe, tmp_path / "bad", name="bad", code=1)
    later = _job(recipe, tmp_path / "later", name="later")
    with pytest.raises(JobError, match="^bad failed"):
        run_jobs([failing, later], 1, "test")
    assert later.state() == "new" and not (tmp_path / "later").exists()
