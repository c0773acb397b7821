"""Recipe runs as jobs that know what defines them.

An experiment (``recipes/loso.py``) is many recipe runs: speaker pretraining, every fold of
every system, fusion. A :class:`Job` is one of them: a script, a YAML file, the overrides
and SpeechBrain run options it is given, and the jobs whose outputs it reads. Before it
runs, its *definition* (those things, with the YAML resolved, includes and all) goes to
``job.json`` in its output folder; after it finishes, the record is marked finished.

A rerun then decides from the record alone:

* same definition, finished, outputs present: the job is reused;
* same definition, not finished (a killed run): it runs again in place, and SpeechBrain's
  checkpointer resumes it;
* another definition, or no record: the old outputs are removed and the job runs afresh,
  so no stale result is ever mixed into a report. A changed job changes the definition
  of every job that depends on it, so those rerun too.
"""
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import yaml
from hyperpyyaml import resolve_references
from speechbrain.utils.run_opts import RunOptions

from mmer_lobes.files import atomic_write_json

logger = logging.getLogger(__name__)

RECORD_FILE = "job.json"
LOG_FILE = "stdout.log"


class JobError(RuntimeError):
    """A job failed, or finished without writing its results."""


def yaml_flow(value):
    """A value as SpeechBrain's command-line overrides expect it (YAML flow style).

    Example
    -------
    >>> yaml_flow({"channels": [4, 8], "lr": 0.01}), yaml_flow("a b"), yaml_flow(True)
    ('{channels: [4, 8], lr: 0.01}', 'a b', 'true')
    """
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()


def run_option_args(run_opts):
    """The command-line arguments that give a child the SpeechBrain run options that were
    set on this command line (``--device cuda:0``, ``--precision fp16``, ``--debug``, ...).

    Example
    -------
    >>> _, run_opts, _ = RunOptions.from_command_line_args(
    ...     ["x.yaml", "--device=cpu", "--debug", "--precision", "bf16", "--lr", "0.1"])
    >>> run_option_args(run_opts)
    ['--debug', '--device=cpu', '--precision=bf16']
    """
    parser = RunOptions._create_parser()
    args = []
    for action in parser._actions:
        if action.dest not in run_opts.overridden_args or not action.option_strings:
            continue
        option = max(action.option_strings, key=len)
        value = run_opts[action.dest]
        if action.nargs == 0:  # a flag (store_true / store_false)
            if value != action.default:
                args.append(option)
        elif isinstance(value, (list, tuple)):
            args += [option, *map(str, value)]
        else:
            args.append(f"{option}={value}")
    return sorted(args)


class Job:
    """One recipe run: its command, its output folder, and what marks it done.

    Arguments
    ---------
    name : str
        What the logs call it.
    script : str
        Path of the recipe script.
    hparams_file : str
        Its YAML file.
    overrides : dict
        YAML overrides (``output_folder`` is added).
    output_folder : str
    done_files : list of str
        Files, relative to ``output_folder``, that the job writes last.
    run_args : list of str
        SpeechBrain run-option arguments (see :func:`run_option_args`).
    depends_on : list of Job
        Jobs whose outputs this one reads: their definitions are part of its own.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> yaml_file = os.path.join(folder, "h.yaml")
    >>> _ = open(yaml_file, "w").write("output_folder: x\\nlr: 0.1\\n")
    >>> job = Job("demo", "recipe.py", yaml_file, {"lr": 0.2}, os.path.join(folder, "out"),
    ...           ["done.txt"], ["--device=cpu"])
    >>> job.command[3], job.command[-1]
    ('--lr=0.2', '--device=cpu')
    >>> job.state()
    'new'
    """

    def __init__(self, name, script, hparams_file, overrides, output_folder, done_files,
                 run_args=(), depends_on=()):
        self.name = name
        self.output_folder = output_folder
        self.done_files = [os.path.join(output_folder, f) for f in done_files]
        self.overrides = {**overrides, "output_folder": output_folder}
        self.command = [sys.executable, script, hparams_file]
        self.command += [f"--{key}={yaml_flow(value)}" for key, value in self.overrides.items()]
        self.command += list(run_args)
        with open(hparams_file, encoding="utf-8") as stream:
            resolved = resolve_references(stream, self.overrides).getvalue()
        self.definition = {
            "script": os.path.basename(script),
            "hparams_file": os.path.basename(hparams_file),
            # The YAML with every include and override resolved: an edit of the file, of a
            # file it includes, or of an override changes it.
            "resolved_hparams_sha256": hashlib.sha256(resolved.encode("utf-8")).hexdigest(),
            "overrides": json.loads(json.dumps(self.overrides)),
            "run_options": list(run_args),
            "depends_on": {job.name: job.digest() for job in depends_on},
        }

    @property
    def record_path(self):
        """``<output_folder>/job.json``."""
        return os.path.join(self.output_folder, RECORD_FILE)

    @property
    def log_path(self):
        """``<output_folder>/stdout.log``: everything the recipe printed."""
        return os.path.join(self.output_folder, LOG_FILE)

    def digest(self):
        """A short hash of the definition, which dependent jobs record."""
        text = json.dumps(self.definition, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def read_record(self):
        """The saved record, or None when missing or unreadable."""
        try:
            with open(self.record_path, encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def state(self):
        """``done`` (reuse), ``interrupted`` (resume in place), ``changed`` (remove and
        rerun: the record differs, or results exist without a record) or ``new``."""
        record = self.read_record()
        if record is None:
            return "changed" if os.path.isdir(self.output_folder) and os.listdir(self.output_folder) else "new"
        if record.get("definition") != self.definition:
            return "changed"
        if record.get("finished") and all(os.path.isfile(p) for p in self.done_files):
            return "done"
        return "interrupted"

    def changes(self):
        """The definition keys that differ from the saved record (for the log)."""
        saved = (self.read_record() or {}).get("definition") or {}
        keys = sorted(set(saved) | set(self.definition))
        changed = [k for k in keys if saved.get(k) != self.definition.get(k)]
        if "overrides" in changed:
            old, new = saved.get("overrides") or {}, self.definition["overrides"]
            changed += [f"overrides.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        return changed

    def write_record(self, finished):
        """Saves the definition and the command; ``finished`` marks a completed run."""
        atomic_write_json(self.record_path, {
            "name": self.name, "finished": finished, "command": self.command,
            "definition": self.definition,
        })


def run_job(job, echo, threads, stop):
    """Runs ``job`` to completion, its output in ``job.log_path`` (and on the console when
    ``echo``); raises :class:`JobError` naming the job and its log when it fails. When
    ``stop`` is set (another job failed, and :func:`run_jobs` terminated this one), it
    returns quietly, its record left unfinished so that the next run resumes it."""
    state = job.state()
    if state == "done" or stop.is_set():
        return
    if state == "changed":
        logger.info("%s: its definition changed (%s): removing its old results in %s",
                    job.name, ", ".join(job.changes()) or "no record", job.output_folder)
        shutil.rmtree(job.output_folder)
    elif state == "interrupted":
        logger.info("%s: resuming an unfinished run in %s", job.name, job.output_folder)
    os.makedirs(job.output_folder, exist_ok=True)
    job.write_record(finished=False)
    logger.info("%s: %s", job.name, " ".join(job.command))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(job.log_path, "a", encoding="utf-8") as log:
        job.process = subprocess.Popen(job.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       env=env, text=True, errors="replace")
        if stop.is_set():  # set while this one was starting, after run_jobs looked for it
            job.process.terminate()
        for line in job.process.stdout:
            log.write(line)
            if echo:
                sys.stdout.write(line)
        code = job.process.wait()
    if stop.is_set():  # stopped because another job failed: it resumes on the next run
        return
    if code != 0:
        raise JobError(f"{job.name} failed with exit code {code}; its log: {job.log_path}")
    missing = [p for p in job.done_files if not os.path.isfile(p)]
    if missing:
        raise JobError(f"{job.name} exited without writing {', '.join(missing)}; its log: {job.log_path}")
    job.write_record(finished=True)


def run_jobs(jobs, n_jobs, description):
    """Runs the jobs that are not done, ``n_jobs`` at a time (output echoed when 1), each
    with ``cores / n_jobs`` threads. The first failure stops the others and is raised.

    Example
    -------
    >>> run_jobs([], 2, "nothing")
    """
    from tqdm import tqdm

    for job in jobs:
        if job.state() == "done":
            logger.info("%s: already finished with the same definition, reused", job.name)
    pending = [job for job in jobs if job.state() != "done"]
    if not pending:
        return
    threads = max(1, (os.cpu_count() or 1) // max(1, n_jobs))
    stop = threading.Event()
    with tqdm(total=len(pending), desc=description, dynamic_ncols=True) as progress:
        if n_jobs <= 1:  # in order, output on the console; a failure starts nothing more
            for job in pending:
                run_job(job, True, threads, stop)
                progress.update(1)
            return
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            futures = [pool.submit(run_job, job, False, threads, stop) for job in pending]
            remaining = set(futures)
            while remaining:
                finished, remaining = wait(remaining, return_when=FIRST_EXCEPTION)
                for future in finished:
                    if future.exception() is not None:
                        stop.set()
                        for other in remaining:
                            other.cancel()
                        for job in pending:
                            if getattr(job, "process", None) is not None and job.process.poll() is None:
                                job.process.terminate()
                        wait(remaining)
                        raise future.exception()
                    progress.update(1)
