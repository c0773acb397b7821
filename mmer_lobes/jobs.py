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
* another definition: the old outputs are removed and the job runs afresh. A changed job
  changes the definition of every job that depends on it, so those rerun too;
* no record, but a non-empty folder (results of an older version, or files put there by
  hand): the folder is moved aside to ``<folder>.unrecorded-<time>`` and the job runs.

The definition holds the recipe's name, its YAML with every include and override resolved
(comments and key order left out), the overrides, the run options that change results (not
where or how verbosely a job runs: ``--device``, ``--noprogressbar``...), the SHA-256 of the
input files the caller names (manifests, a pretrained encoder), and the definitions of the
jobs it depends on. It does not hold the code of the recipes and lobes: after a code change
that alters results, rerun into a new output folder.
"""
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import yaml
from hyperpyyaml import resolve_references
from speechbrain.utils.run_opts import RunOptions

from mmer_lobes.files import atomic_write_json

logger = logging.getLogger(__name__)

RECORD_FILE = "job.json"
LOG_FILE = "stdout.log"
# SpeechBrain run options that say where or how visibly a job runs, not what it computes:
# a finished job is reused, and an interrupted one resumed, whatever their values.
PLACEMENT_OPTIONS = frozenset({
    "device", "data_parallel_backend", "distributed_launch", "distributed_backend",
    "find_unused_parameters", "noprogressbar", "log_config", "tqdm_colored_bar",
    "tqdm_barcolor", "ckpt_interval_minutes", "ckpt_interval_steps",
})


class JobError(RuntimeError):
    """A job failed, or finished without writing its results.

    Not a :class:`~mmer_lobes.errors.ProjectError`: the experiment's inputs were accepted,
    and a recipe run failed later (its own log says why), so ``recipes/loso.py`` reports it
    with its own exit code, 1, rather than the bad-input code 2.
    """


class _QuotingDumper(yaml.SafeDumper):
    """Quotes every string: the recipes read overrides as YAML 1.2 (ruamel), which takes an
    unquoted ``08`` or ``1e3`` (a group name) for a number, where PyYAML's YAML 1.1 did not."""


_QuotingDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"'))


def yaml_flow(value):
    """A value as SpeechBrain's command-line overrides expect it (YAML flow style), every
    string quoted.

    Example
    -------
    >>> yaml_flow({"channels": [4, 8], "lr": 0.01}), yaml_flow("08"), yaml_flow(True)
    ('{"channels": [4, 8], "lr": 0.01}', '"08"', 'true')
    """
    return yaml.dump(value, Dumper=_QuotingDumper, default_flow_style=True, width=float("inf")).strip() \
        .removesuffix("\n...").strip()


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
    args = []
    for action in _run_option_actions():
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


def defining_run_args(run_args):
    """The run-option arguments that change what a job computes (see ``PLACEMENT_OPTIONS``).

    Example
    -------
    >>> defining_run_args(["--debug", "--device=cuda:1", "--noprogressbar", "--precision=fp16"])
    ['--debug', '--precision=fp16']
    """
    placement = {option for action in _run_option_actions() if action.dest in PLACEMENT_OPTIONS
                 for option in action.option_strings}
    return [arg for arg in run_args if arg.split("=", 1)[0] not in placement]


def _run_option_actions():
    """The argparse actions of SpeechBrain's run options."""
    return RunOptions._create_parser()._actions


class _TagsAsData(yaml.SafeLoader):
    """Reads HyperPyYAML with its tags (``!new:``, ``!ref``...) as plain data: nothing is
    built or run."""


_TagsAsData.add_multi_constructor("!", lambda loader, suffix, node: {"!" + suffix: (
    loader.construct_mapping(node, deep=True) if isinstance(node, yaml.MappingNode)
    else loader.construct_sequence(node, deep=True) if isinstance(node, yaml.SequenceNode)
    else loader.construct_scalar(node))})


def canonical_hparams(hparams_file, overrides):
    """The YAML of ``hparams_file`` with its includes and ``overrides`` resolved, as sorted
    JSON without comments: what the file defines, whatever its layout.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "h.yaml")
    >>> _ = open(path, "w").write("lr: 0.1  # a comment\\nmodel: !new:torch.nn.Linear [2, 2]\\n")
    >>> canonical_hparams(path, {"lr": 0.2})
    '{"lr": 0.2, "model": {"!new:torch.nn.Linear": [2, 2]}}'
    """
    with open(hparams_file, encoding="utf-8") as stream:
        resolved = resolve_references(stream, overrides).getvalue()
    return json.dumps(yaml.load(resolved, Loader=_TagsAsData), sort_keys=True, default=str)


def file_digest(path):
    """SHA-256 of a file's bytes.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(path, "w").write("abc")
    >>> file_digest(path)[:12]
    'ba7816bf8f01'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    input_files : list of str
        Files the job reads that no job of the run writes: their SHA-256 is part of its
        definition.

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
                 run_args=(), depends_on=(), input_files=()):
        self.name = name
        self.output_folder = output_folder
        self.done_files = [os.path.join(output_folder, f) for f in done_files]
        self.overrides = {**overrides, "output_folder": output_folder}
        self.command = [sys.executable, script, hparams_file]
        self.command += [f"--{key}={yaml_flow(value)}" for key, value in self.overrides.items()]
        self.command += list(run_args)
        # An edit of the YAML, of a file it includes, or of an override changes it; a
        # comment or the order of keys does not.
        resolved = canonical_hparams(hparams_file, self.overrides)
        self.definition = {
            "script": os.path.basename(script),
            "hparams_file": os.path.basename(hparams_file),
            "resolved_hparams_sha256": hashlib.sha256(resolved.encode("utf-8")).hexdigest(),
            "overrides": json.loads(json.dumps(self.overrides)),
            "run_options": defining_run_args(run_args),
            "input_files": {path: file_digest(path) for path in input_files},
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
        rerun), ``unrecorded`` (files without a record: move aside and run) or ``new``."""
        record = self.read_record()
        if record is None:
            return "unrecorded" if os.path.isdir(self.output_folder) and os.listdir(self.output_folder) else "new"
        if record.get("definition") != self.definition:
            return "changed"
        if record.get("finished") and all(os.path.isfile(p) for p in self.done_files):
            return "done"
        return "interrupted"

    def changes(self):
        """The definition keys that differ from the saved record (for the log)."""
        record = self.read_record()
        if record is None:
            return ["no record"]
        saved = record.get("definition") or {}
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
                    job.name, ", ".join(job.changes()), job.output_folder)
        shutil.rmtree(job.output_folder)
    elif state == "unrecorded":
        aside = f"{job.output_folder}.unrecorded-{time.strftime('%Y%m%d-%H%M%S')}"
        logger.warning("%s: %s holds files but no %s (an older version's results?): moved to %s",
                       job.name, job.output_folder, RECORD_FILE, aside)
        os.rename(job.output_folder, aside)
    elif state == "interrupted":
        logger.info("%s: resuming an unfinished run in %s", job.name, job.output_folder)
    os.makedirs(job.output_folder, exist_ok=True)
    job.write_record(finished=False)
    logger.info("%s: %s", job.name, " ".join(job.command))
    # Unbuffered, and copied as bytes: the recipe's output arrives as it is written, and its
    # progress bars (carriage returns) stay bars instead of becoming one line per update.
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONUNBUFFERED="1")
    console = getattr(sys.stdout, "buffer", None) if echo else None
    with open(job.log_path, "ab") as log:
        job.process = subprocess.Popen(job.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        if stop.is_set():  # set while this one was starting, after run_jobs looked for it
            job.process.terminate()
        for chunk in iter(lambda: job.process.stdout.read1(1 << 16), b""):
            log.write(chunk)
            if console is not None:
                console.write(chunk)
                console.flush()
        code = job.process.wait()
    missing = [p for p in job.done_files if not os.path.isfile(p)]
    if code == 0 and not missing:
        job.write_record(finished=True)
        return
    if stop.is_set():  # stopped because another job failed: it resumes on the next run
        return
    if code != 0:
        raise JobError(f"{job.name} failed with exit code {code}; its log: {job.log_path}")
    raise JobError(f"{job.name} exited without writing {', '.join(missing)}; its log: {job.log_path}")


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
                finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
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
